//! Scenarios drawn from one seed: clients, workload and fault schedule.

use std::collections::VecDeque;
use std::time::Duration;

use tether_proto::Rng;

/// One thing that happens at a scheduled virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Client `from` sends to client `to` (by pubkey).
    Send {
        /// Sender index.
        from: usize,
        /// Recipient index.
        to: usize,
        /// Resend automatically after a disconnect (same idempotency id).
        resend: bool,
        /// Offline deadline, if any.
        queue_for: Option<Duration>,
    },
    /// Client `from` makes a request of kind `kind` (0..7).
    Request {
        /// Requester index.
        from: usize,
        /// Which request.
        kind: u8,
    },
    /// Client `from` sends a fire-and-forget command.
    Command {
        /// Sender index.
        from: usize,
    },
    /// The application closes client `client` for good.
    Close {
        /// Which client.
        client: usize,
    },
    /// "The network is back" for client `client`.
    RetryNow {
        /// Which client.
        client: usize,
    },
    /// Forced reconnect of client `client`.
    Reconnect {
        /// Which client.
        client: usize,
    },
    /// Client `client`'s host sleeps: it gets no ticks and no packets for `for_`.
    Suspend {
        /// Which client.
        client: usize,
        /// How long.
        for_: Duration,
    },
    /// A fault of the network or the broker.
    Fault(Fault),
    /// A hostile member attacks the broker (X15).
    Hostile {
        /// Which of the hostile members (0 or 1).
        attacker: u8,
        /// The attack.
        attack: Attack,
        /// The honest client it aims at.
        victim: usize,
    },
}

/// What a hostile member does, straight to the broker core (issue 14's attacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// A hello whose display name is far over the field bound.
    OversizedHello,
    /// A hello with the victim's `sessionId`, to kick it.
    StealSession,
    /// A member hello claiming the victim's key as its `sessionPubkey`.
    ClaimKey,
    /// A hello with the victim's display name and a group it was not given.
    NameSquat,
    /// Oversized state, memories and summary, then many state keys and list requests.
    Bloat,
    /// Fat sends to the victim (unconfirmed pushes pile up on its connection).
    Flood,
    /// Connections that never say hello.
    PreHelloFlood,
    /// A frame with a duplicate `type` key.
    DuplicateType,
    /// More connections than one member may hold.
    ManyConnections,
}

/// Every attack, for drawing one.
pub const ATTACKS: [Attack; 9] = [
    Attack::OversizedHello,
    Attack::StealSession,
    Attack::ClaimKey,
    Attack::NameSquat,
    Attack::Bloat,
    Attack::Flood,
    Attack::PreHelloFlood,
    Attack::DuplicateType,
    Attack::ManyConnections,
];

/// Hostile members in every scenario (roster members the simulation does not drive).
pub const HOSTILE_MEMBERS: u8 = 2;

/// Faults the simulated network and broker can suffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The broker restarts: every connection drops (1001, or 1006 when abrupt) and
    /// all its state is lost.
    BrokerRestart {
        /// No close frames: the sockets just die.
        abrupt: bool,
    },
    /// The broker refuses hellos with this rejection code for a while.
    Refuse {
        /// Rejection code from PROTOCOL.md's table.
        code: &'static str,
        /// How long.
        for_: Duration,
    },
    /// The broker is full: `capacity` with a retry-after, for a while.
    Capacity {
        /// The `retryAfterMs` it sends.
        retry_after_ms: u64,
        /// How long.
        for_: Duration,
    },
    /// The broker stops answering hellos for a while.
    StallHellos {
        /// How long.
        for_: Duration,
    },
    /// The broker holds every send's ack back.
    DelayAcks {
        /// By how much.
        by: Duration,
        /// For how long.
        for_: Duration,
    },
    /// The broker sends a garbage frame to a client.
    Garbage {
        /// Which client.
        client: usize,
    },
    /// A client's current connection silently stops carrying anything, both ways.
    HalfOpen {
        /// Which client.
        client: usize,
    },
    /// A client's current connection is lost; both ends see 1006.
    LoseConnection {
        /// Which client.
        client: usize,
    },
    /// Nothing reaches the broker from this client for a while (connects hang).
    Partition {
        /// Which client.
        client: usize,
        /// How long.
        for_: Duration,
    },
    /// Connects from this client are refused at once for a while.
    RefuseConnect {
        /// Which client.
        client: usize,
        /// How long.
        for_: Duration,
    },
}

/// A whole run, fixed by its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Number of clients.
    pub clients: usize,
    /// One-way latency of each client's link.
    pub latency: Vec<Duration>,
    /// Jitter of the clients' reconnect delays, in thousandths.
    pub jitter_permille: u16,
    /// Virtual time the workload and faults span.
    pub duration: Duration,
    /// What happens when, sorted by time.
    pub ops: Vec<(Duration, Op)>,
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below_inclusive(items.len() as u64 - 1) as usize]
}

fn ms(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below_inclusive(hi - lo))
}

impl Scenario {
    /// Draws a scenario from `seed`.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5EED_5CE7_A210_0000);
        let clients = 2 + rng.below_inclusive(3) as usize;
        let latency = (0..clients).map(|_| ms(&mut rng, 1, 80)).collect();
        let jitter_permille = pick(&mut rng, &[0, 200, 200, 200, 500]);
        let duration = Duration::from_secs(60 + rng.below_inclusive(240));
        let count = 20 + rng.below_inclusive(60) as usize;
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            let at = Duration::from_millis(rng.below_inclusive(duration.as_millis() as u64));
            let client = rng.below_inclusive(clients as u64 - 1) as usize;
            let other = (client + 1 + rng.below_inclusive(clients as u64 - 2) as usize) % clients;
            let op = match rng.below_inclusive(99) {
                0..=39 => Op::Send {
                    from: client,
                    to: other,
                    resend: rng.below_inclusive(1) == 0,
                    queue_for: (rng.below_inclusive(3) == 0).then(|| ms(&mut rng, 500, 20_000)),
                },
                40..=54 => Op::Request {
                    from: client,
                    kind: rng.below_inclusive(6) as u8,
                },
                55..=59 => Op::Command { from: client },
                60..=61 => Op::Close { client },
                62..=63 => Op::RetryNow { client },
                64..=65 => Op::Reconnect { client },
                66..=67 => Op::Suspend {
                    client,
                    for_: ms(&mut rng, 5_000, 120_000),
                },
                68..=70 => Op::Fault(Fault::BrokerRestart {
                    abrupt: rng.below_inclusive(1) == 0,
                }),
                71 => Op::Fault(Fault::Refuse {
                    code: pick(
                        &mut rng,
                        &[
                            "unauthorized",
                            "revoked",
                            "bad_signature",
                            "timestamp_skew",
                            "expired",
                            "capacity",
                        ],
                    ),
                    for_: ms(&mut rng, 1_000, 30_000),
                }),
                72..=74 => Op::Fault(Fault::Capacity {
                    retry_after_ms: pick(&mut rng, &[500, 2_000, 10_000]),
                    for_: ms(&mut rng, 1_000, 20_000),
                }),
                75..=77 => Op::Fault(Fault::StallHellos {
                    for_: ms(&mut rng, 1_000, 20_000),
                }),
                78..=80 => Op::Fault(Fault::DelayAcks {
                    by: ms(&mut rng, 100, 20_000),
                    for_: ms(&mut rng, 1_000, 30_000),
                }),
                81..=83 => Op::Fault(Fault::Garbage { client }),
                84..=87 => Op::Fault(Fault::HalfOpen { client }),
                88..=91 => Op::Fault(Fault::LoseConnection { client }),
                92..=95 => Op::Fault(Fault::Partition {
                    client,
                    for_: ms(&mut rng, 1_000, 60_000),
                }),
                _ => Op::Fault(Fault::RefuseConnect {
                    client,
                    for_: ms(&mut rng, 1_000, 30_000),
                }),
            };
            ops.push((at, op));
        }
        // Drawn after the workload, so the honest part of a seed stays what it was.
        for _ in 0..rng.below_inclusive(8) {
            let at = Duration::from_millis(rng.below_inclusive(duration.as_millis() as u64));
            ops.push((
                at,
                Op::Hostile {
                    attacker: rng.below_inclusive(u64::from(HOSTILE_MEMBERS) - 1) as u8,
                    attack: pick(&mut rng, &ATTACKS),
                    victim: rng.below_inclusive(clients as u64 - 1) as usize,
                },
            ));
        }
        ops.sort_by_key(|(at, _)| *at);
        Scenario {
            seed,
            clients,
            latency,
            jitter_permille,
            duration,
            ops,
        }
    }
}

/// Takes the first scheduled op if it is due at `now`.
pub(crate) fn pop_due<T>(ops: &mut VecDeque<(Duration, T)>, now: Duration) -> Option<T> {
    if ops.front().is_some_and(|(at, _)| *at <= now) {
        ops.pop_front().map(|(_, op)| op)
    } else {
        None
    }
}
