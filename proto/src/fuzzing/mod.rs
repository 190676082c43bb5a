//! Fuzz entry points: whole inputs in, a panic out only when an invariant breaks.
//!
//! Each function takes the raw bytes a fuzzer (or a corpus file) hands it and
//! never panics on any input unless the machine under test misbehaves, so every
//! panic is a finding. The bodies live here, compiled by ordinary `cargo test`
//! (the `tether-tests` crate enables the `fuzzing` feature and replays the
//! corpus), and `fuzz/fuzz_targets/*.rs` are three-line shims into them: the
//! harness cannot rot unnoticed between fuzzing campaigns.
//!
//! - [`decode`]: frame decoding in both directions, and the encode round trip.
//! - [`lifecycle`]: event sequences against the connection lifecycle's invariants.
//! - [`session`]: application calls and broker behaviour against the session's.
//! - [`hosted`]: socket news, ticks and control calls against the hosted session's.
//!
//! The invariants are those of the proptest suites in `lifecycle/proptests.rs` and
//! `mesh/session/proptests.rs`, driven by bytes instead of strategies so that a
//! coverage-guided fuzzer can steer them.

mod decode;
mod hosted;
mod lifecycle;
mod session;

pub use self::decode::decode;
pub use self::hosted::hosted;
pub use self::lifecycle::lifecycle;
pub use self::session::session;

use std::time::{Duration, Instant};

use arbitrary::Unstructured;

use crate::mesh::identity::{MemberIdentity, Presence, SecretKey};
use crate::time::Now;

/// Wall clock at the start of every run; the hello's timestamp is derived from it.
const UNIX0: u64 = 1_700_000_000_000;

/// Most steps one input drives. Longer inputs add nothing a fuzzer cannot reach
/// with shorter ones and only slow each execution down.
const MAX_STEPS: usize = 400;

/// A monotonic test clock that only moves forward, plus the wall clock beside it.
struct Clock {
    t0: Instant,
    now: Instant,
    /// Wall-clock offset from the monotonic one, moved by simulated suspends.
    wall_skew_ms: u64,
}

impl Clock {
    fn new() -> Self {
        let t0 = Instant::now();
        Clock {
            t0,
            now: t0,
            wall_skew_ms: 0,
        }
    }

    fn at(&self) -> Now {
        let elapsed = u64::try_from((self.now - self.t0).as_millis()).unwrap_or(u64::MAX);
        Now::new(
            self.now,
            UNIX0.saturating_add(elapsed).saturating_add(self.wall_skew_ms),
        )
    }

    /// Moves on by `ms`, saturating at the end of representable time (the input
    /// may ask for `u64::MAX` ms: the machines must survive a clock up there).
    fn advance(&mut self, ms: u64) {
        self.now = crate::time::deadline_after(self.now, Duration::from_millis(ms));
    }

    /// Jumps to `at` unless it is in the past: time never goes backwards here.
    fn jump_to(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }
}

/// A step of simulated time: mostly short, sometimes long enough to cross any
/// deadline of the default configuration (the shape of the proptests' steps),
/// and rarely a jump of up to `u64::MAX` ms, to the end of representable time.
fn time_step(u: &mut Unstructured<'_>) -> u64 {
    let max = match u.int_in_range(0u8..=40).unwrap_or(0) {
        0..=6 => 0,
        7..=20 => 50,
        21..=33 => 5_000,
        34..=39 => 700_000,
        _ => u64::MAX,
    };
    u.int_in_range(0..=max).unwrap_or(0)
}

/// A short string from the input (at most `max` bytes), for free-form fields.
fn short_text(u: &mut Unstructured<'_>, max: usize) -> String {
    let len = u.int_in_range(0..=max).unwrap_or(0);
    let bytes = u.bytes(len.min(u.len())).unwrap_or_default();
    String::from_utf8_lossy(bytes).into_owned()
}

/// A duration for a setting: mostly `ordinary`, sometimes one of the extremes
/// (zero, the bound itself, just over it, `Duration::MAX`).
fn extreme_or(u: &mut Unstructured<'_>, ordinary: Duration) -> Duration {
    match u.int_in_range(0u8..=15).unwrap_or(0) {
        0 => Duration::ZERO,
        1 => crate::MAX_DURATION,
        2 => crate::MAX_DURATION + Duration::from_nanos(1),
        3 => Duration::MAX,
        _ => ordinary,
    }
}

/// The member every run signs as: fixed, so a crash replays exactly.
fn member() -> MemberIdentity {
    MemberIdentity {
        mesh_id: "mesh-fuzz".into(),
        member_id: "member-fuzz".into(),
        secret: SecretKey::from_seed([7; 32]),
    }
}

fn presence() -> Presence {
    Presence {
        session_id: "s-fuzz".into(),
        pid: 4242,
        cwd: "/fuzz".into(),
        ..Presence::default()
    }
}

/// The one frame a mesh client writes before open, for the contract of both
/// mesh targets.
fn is_hello(text: &str) -> bool {
    use crate::mesh::wire::{decode_client_frame, ClientFrame};
    matches!(
        decode_client_frame(text, usize::MAX),
        Ok(ClientFrame::Hello(_) | ClientFrame::SessionHello(_))
    )
}
