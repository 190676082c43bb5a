//! `tether sim`: a simulation campaign from the command line, of the mesh
//! (sessions and the broker core) or, with `--hosted`, of the hosted session
//! beside a model of its server.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use tether_sim::hosted::{replay_hosted_command, run_hosted_seed};
use tether_sim::{replay_command, run_seed, Outcome, World};

use crate::fail::Failure;
use crate::stderr::{out, say};

/// Which simulation a campaign runs, and how its outcomes are told.
#[derive(Clone, Copy)]
pub struct Campaign {
    run: fn(u64, bool) -> Outcome,
    replay: fn(u64) -> String,
    /// The flag that selects it (`--hosted`), empty for the default.
    flag: &'static str,
    /// What `Outcome::sends` counts: issued, then resolved.
    counted: (&'static str, &'static str),
}

impl Campaign {
    /// The mesh: real sessions, the real broker core, faults on the network.
    pub const MESH: Campaign = Campaign {
        run: run_seed,
        replay: replay_command,
        flag: "",
        counted: ("sends", "ops answered ok"),
    };
    /// The hosted session beside a pure model of its server.
    pub const HOSTED: Campaign = Campaign {
        run: run_hosted_seed,
        replay: replay_hosted_command,
        flag: " --hosted",
        counted: ("control requests", "answered"),
    };

    /// The command that replays `seed` of this campaign with its trace.
    fn cli_replay(&self, seed: u64) -> String {
        format!("tether sim{} --replay {seed}", self.flag)
    }
}

/// Runs seeds `from..from + seeds`, with a progress bar on a terminal; stops at
/// the first broken invariant and prints its replay lines and trace tail.
pub fn run(campaign: Campaign, seeds: u64, from: u64) -> Result<(), Failure> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let (mut steps, mut sends, mut resolved, mut simulated) = (0u64, 0usize, 0u64, 0f64);
    for (done, seed) in (from..from.saturating_add(seeds)).enumerate() {
        let outcome = (campaign.run)(seed, false);
        steps += outcome.steps;
        sends += outcome.sends.0;
        resolved += outcome.sends.1;
        simulated += outcome.simulated.as_secs_f64();
        if let Some(v) = outcome.violation {
            if tty {
                say!();
            }
            let traced = (campaign.run)(seed, true);
            out!("seed {seed}: {}", v.0);
            out!("last steps:\n{}", World::describe(&traced));
            out!("replay: {}", campaign.cli_replay(seed));
            out!("    or: {}", (campaign.replay)(seed));
            return Err(Failure::local(
                format!("seed {seed} broke an invariant: {}", v.0),
                "replay it with the line above",
            ));
        }
        let done = done as u64 + 1;
        if tty && (done % 25 == 0 || done == seeds) {
            let width = 40;
            let filled = (done * width / seeds.max(1)) as usize;
            eprint!(
                "\r[{}{}] {done}/{seeds} seeds",
                "#".repeat(filled),
                " ".repeat(width as usize - filled)
            );
            let _ = std::io::stderr().flush();
        }
    }
    if tty {
        say!();
    }
    let (sent, answered) = campaign.counted;
    out!(
        "{seeds} seeds ({from}..{}) held every invariant",
        from.saturating_add(seeds)
    );
    out!(
        "{steps} steps, {:.1} h of simulated time, {sends} {sent}, {resolved} {answered}, in {:.1} s",
        simulated / 3600.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one seed with its trace on and prints the trace's tail and counts:
/// the same run, byte for byte, as the campaign's (X2).
pub fn replay(campaign: Campaign, seed: u64) -> Result<(), Failure> {
    let outcome = (campaign.run)(seed, true);
    let (sent, answered) = campaign.counted;
    out!("{}", World::describe(&outcome).trim_end());
    out!(
        "seed {seed}: {} steps, {:.1} s of simulated time, {} {sent}, {} {answered}, trace {:016x}",
        outcome.steps,
        outcome.simulated.as_secs_f64(),
        outcome.sends.0,
        outcome.sends.1,
        outcome.trace_hash
    );
    match outcome.violation {
        Some(v) => Err(Failure::local(
            format!("seed {seed} broke an invariant: {}", v.0),
            "the trace above ends where it broke",
        )),
        None => {
            out!("seed {seed} held every invariant");
            Ok(())
        }
    }
}
