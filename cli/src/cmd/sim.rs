//! `tether sim`: a simulation campaign from the command line.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use tether_sim::{replay_command, run_seed, World};

use crate::fail::Failure;
use crate::stderr::{out, say};

/// Runs seeds `from..from + seeds`, with a progress bar on a terminal; stops at
/// the first broken invariant and prints its replay line and trace tail.
pub fn run(seeds: u64, from: u64) -> Result<(), Failure> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let (mut steps, mut sends, mut acked, mut simulated) = (0u64, 0usize, 0u64, 0f64);
    for (done, seed) in (from..from.saturating_add(seeds)).enumerate() {
        let outcome = run_seed(seed, false);
        steps += outcome.steps;
        sends += outcome.sends.0;
        acked += outcome.sends.1;
        simulated += outcome.simulated.as_secs_f64();
        if let Some(v) = outcome.violation {
            if tty {
                say!();
            }
            let traced = run_seed(seed, true);
            out!("seed {seed}: {}", v.0);
            out!("last steps:\n{}", World::describe(&traced));
            out!("replay: {}", replay_command(seed));
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
    out!(
        "{seeds} seeds ({from}..{}) held every invariant",
        from.saturating_add(seeds)
    );
    out!(
        "{steps} steps, {:.1} h of simulated time, {sends} sends, {acked} ops answered ok, in {:.1} s",
        simulated / 3600.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
