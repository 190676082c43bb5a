//! A hosted-session scenario drawn from one seed: what the server does with
//! each attempt, what it sends while it serves, and what the application does.

use std::time::Duration;

use tether_proto::Rng;

/// What the server does with one attempt's upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Accept and serve until the run ends.
    Serve,
    /// Accept, serve for `after`, then close with `code` (4001, 4003, 1000 …).
    Close {
        /// The close code.
        code: u16,
        /// How long it serves first.
        after: Duration,
    },
    /// Refuse the upgrade with this HTTP status (401, 403, 5xx).
    Refuse(u16),
    /// Accept, serve for `after`, then go silent: no frames, no pongs.
    Silent {
        /// How long it serves first.
        after: Duration,
    },
    /// Accept, serve for `after`, then drop the connection (1006).
    Drop {
        /// How long it serves first.
        after: Duration,
    },
}

/// What the application does at a scheduled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppOp {
    /// `send_control_request` (refused unless connected).
    ControlRequest,
    /// `reconnect()`: a fresh connection after 500 ms (S5).
    Reconnect,
    /// "The network is back" (X11).
    RetryNow,
}

/// A whole hosted run, fixed by its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedScenario {
    /// The seed it was drawn from.
    pub seed: u64,
    /// One-way latency of the link.
    pub latency: Duration,
    /// Jitter of the reconnect delays, in thousandths.
    pub jitter_permille: u16,
    /// Virtual time the run spans before the application closes.
    pub duration: Duration,
    /// The plan of attempt n at index n − 1; later attempts are served.
    pub plans: Vec<Plan>,
    /// Attempts (1-based) whose token fetch fails.
    pub token_failures: Vec<u64>,
    /// How often a serving server sends a frame.
    pub frame_every: Duration,
    /// The application's ops, sorted by time.
    pub ops: Vec<(Duration, AppOp)>,
}

fn ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below_inclusive(hi - lo))
}

fn plan(rng: &mut Rng) -> Plan {
    let after = ms(rng, 0, 25_000);
    match rng.below_inclusive(99) {
        0..=17 => Plan::Serve,
        18..=33 => Plan::Close { code: 4001, after },
        34..=36 => Plan::Close { code: 4003, after },
        37..=46 => Plan::Close {
            code: [1000, 1001, 1011][rng.below_inclusive(2) as usize],
            after,
        },
        47..=64 => Plan::Refuse([401, 403, 500, 502, 503][rng.below_inclusive(4) as usize]),
        65..=79 => Plan::Silent { after },
        _ => Plan::Drop { after },
    }
}

impl HostedScenario {
    /// Draws a scenario from `seed`.
    pub fn generate(seed: u64) -> HostedScenario {
        let mut rng = Rng::new(seed ^ 0x4057_ED5E_5510_0000);
        let latency = ms(&mut rng, 1, 80);
        let jitter_permille = [0, 200, 200, 500][rng.below_inclusive(3) as usize];
        let duration = Duration::from_secs(120 + rng.below_inclusive(900));
        // The first attempt mostly opens: a failed first connect ends the run (D1).
        let first = if rng.below_inclusive(9) == 0 {
            plan(&mut rng)
        } else {
            Plan::Close {
                code: 1000,
                after: ms(&mut rng, 0, 60_000),
            }
        };
        let mut plans = vec![first];
        while plans.len() < 40 {
            // Outages come in streaks: the same refusal or close several
            // attempts in a row, so budgets and retry limits run out.
            let p = plan(&mut rng);
            let streak = if rng.below_inclusive(2) == 0 {
                2 + rng.below_inclusive(6)
            } else {
                1
            };
            for _ in 0..streak {
                plans.push(p);
            }
        }
        let token_failures = (2..40).filter(|_| rng.below_inclusive(24) == 0).collect();
        let frame_every = ms(&mut rng, 500, 40_000);
        let count = 5 + rng.below_inclusive(40) as usize;
        let mut ops: Vec<(Duration, AppOp)> = (0..count)
            .map(|_| {
                let at = Duration::from_millis(rng.below_inclusive(duration.as_millis() as u64));
                let op = match rng.below_inclusive(39) {
                    0..=35 => AppOp::ControlRequest,
                    36..=37 => AppOp::Reconnect,
                    _ => AppOp::RetryNow,
                };
                (at, op)
            })
            .collect();
        ops.sort_by_key(|(at, _)| *at);
        HostedScenario {
            seed,
            latency,
            jitter_permille,
            duration,
            plans,
            token_failures,
            frame_every,
            ops,
        }
    }

    /// The plan of attempt `attempt` (1-based).
    pub fn plan(&self, attempt: u64) -> Plan {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.plans.get(index).copied().unwrap_or(Plan::Serve)
    }
}
