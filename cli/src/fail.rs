//! One-line errors with an exit code that says whose fault it was.
//!
//! Every failure has a kind; the library's policy decides whether it stops or
//! retries, and the CLI maps the outcome to an exit code and a true hint:
//!
//! | failure kind | policy (default) | exit |
//! |---|---|---|
//! | invalid setting, `--ca`/`--cert`/`--key` file unreadable or without a certificate or key | refused before connecting | 2 |
//! | connect: configuration (bad URL or scheme, header, TLS set-up) | stop | 2 |
//! | connect: TLS certificate (unknown issuer, wrong name, expired) | stop | 3 |
//! | connect: the proxy refused its credentials (CONNECT answered 407) | stop | 3 |
//! | connect: DNS, refused, TLS other, HTTP status, other proxy refusals, upgrade, timeout, network | retry (first connect: fail fast) | 4 |
//! | rejection `bad_signature`, `malformed`, `unauthorized`, `revoked`, `session_replaced`, closes 4001 (`kicked`)/4002/4003 | stop | 3 |
//! | rejection `timestamp_skew` | 2 retries with a fresh timestamp, then stop (first connect too) | 3 |
//! | rejection `bad_session_pubkey`, `bad_parent_pubkey`, `attestation_mismatch`, `expired` | 1 retry with a re-minted attestation, then stop | 3 |
//! | rejection `capacity`, closes 1001/1006, hello-ack timeout, stale | retry (honouring `retryAfterMs` up to 5 min) | 4 when the budget is spent |
//! | frame over the size limit (1009), again after a reconnect | retry at the longest backoff delay | 4 when the budget is spent |
//! | send/request: broker code in PROTOCOL.md's permanent list | permanent | 3 |
//! | send/request: other broker code (`rate_limit`, `no connected peer …`) | transient | 4 |
//! | send/request: never sent (queue full, deadline) | safe to retry | 4 |
//! | send/request: outcome unknown, timed out | may have been delivered — check before sending again | 4 |
//!
//! Configuration and certificate errors stop because the next attempt would
//! fail the same way: retrying would only hide a typo, and a certificate that
//! starts to verify by itself is what verification exists to notice.

use std::fmt;
use std::process::ExitCode;

use crate::stderr::say;
use tether_proto::lifecycle::{ConnectFailureKind, Failure as Ended, StopReason};
use tether_proto::mesh::session::FailureKind;
use tether_tokio::{ClientError, ConnectError, IdentityError};

/// Exit code: the command line or a file was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the broker refused us for good (bad key, revoked, replaced …).
pub const EXIT_REJECTED: u8 = 3;
/// Exit code: a transient failure (unreachable, timed out); retrying may work.
pub const EXIT_TRANSIENT: u8 = 4;
/// Exit code: anything else went wrong locally.
pub const EXIT_LOCAL: u8 = 1;

/// What failed, why, and what to do, plus the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What failed and why, in one line.
    pub what: String,
    /// What the user can do about it.
    pub hint: String,
    /// The process exit code.
    pub code: u8,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            hint: hint.into(),
            code: EXIT_USAGE,
        }
    }

    /// A local error (exit 1).
    pub fn local(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            hint: hint.into(),
            code: EXIT_LOCAL,
        }
    }

    /// An identity or session file that could not be read or written.
    pub fn identity(e: IdentityError) -> Self {
        let hint = match &e {
            IdentityError::Exists { .. } => "choose another path or remove the file",
            IdentityError::Read { .. } => "create one with `tether keygen --out FILE`",
            IdentityError::Write { .. } | IdentityError::NoRandomness(_) => "check the disk and retry",
            _ => "regenerate it with `tether keygen`",
        };
        let code = match &e {
            IdentityError::Write { .. } | IdentityError::NoRandomness(_) => EXIT_LOCAL,
            _ => EXIT_USAGE,
        };
        Failure {
            what: e.to_string(),
            hint: hint.into(),
            code,
        }
    }

    /// A connect failure: the exit code and hint follow its kind (see the table
    /// in the crate docs).
    pub fn connect(e: ConnectError) -> Self {
        let what = e.to_string();
        let (code, hint) = match &e {
            ConnectError::Config(c) => (EXIT_USAGE, format!("fix the setting named above ({c})")),
            ConnectError::NoCredentials => (EXIT_USAGE, "pass --identity FILE".to_owned()),
            ConnectError::Tls(t) => (
                EXIT_USAGE,
                format!("check the --ca, --cert and --key files ({t})"),
            ),
            ConnectError::Failed(reason) => stop_hint(reason),
            ConnectError::Io(_) | ConnectError::Shutdown => (
                EXIT_LOCAL,
                "the client could not run here; check the system's limits".into(),
            ),
        };
        Failure { what, hint, code }
    }

    /// The session stopped for good while running (`listen`): why, and the exit
    /// code of the same table.
    pub fn stopped(reason: &StopReason) -> Self {
        let (code, hint) = stop_hint(reason);
        Failure {
            what: format!("the session stopped: {reason}"),
            hint,
            code,
        }
    }

    /// A failed send, request or command.
    pub fn client(what: &str, e: ClientError) -> Self {
        let (code, hint) = match &e {
            ClientError::Failed(f) if f.permanent => (
                EXIT_REJECTED,
                "the broker refused it for good: fix the target or the message".into(),
            ),
            ClientError::Failed(f) if f.may_have_been_delivered() => (
                EXIT_TRANSIENT,
                "it may have been delivered — check before sending again".into(),
            ),
            ClientError::Failed(f) if f.kind == FailureKind::Rejected => (
                EXIT_TRANSIENT,
                "the broker refused it for now; retry later".into(),
            ),
            ClientError::Failed(_) => (EXIT_TRANSIENT, "it was never sent: safe to retry".into()),
            _ => (EXIT_TRANSIENT, "it was never sent: safe to retry".into()),
        };
        Failure {
            what: format!("{what} failed: {e}"),
            hint,
            code,
        }
    }

    /// Prints the one line and returns the exit code.
    pub fn report(&self) -> ExitCode {
        say!("error: {self}");
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.hint)
    }
}

/// The exit code and a true hint for a stop: by the kind of its failure.
fn stop_hint(reason: &StopReason) -> (u8, String) {
    let code = match reason {
        StopReason::BudgetExhausted { .. } => EXIT_TRANSIENT,
        StopReason::Permanent { .. }
        | StopReason::RetriesExhausted { .. }
        | StopReason::NeverOpened { .. } => EXIT_REJECTED,
        StopReason::FirstConnectFailed { .. } | StopReason::User => EXIT_TRANSIENT,
    };
    let hint = match reason.failure() {
        Some(Ended::ConnectFailed { kind, .. }) => {
            let hint = match kind {
                ConnectFailureKind::Configuration => {
                    return (
                        EXIT_USAGE,
                        "check the --url (ws:// or wss://, a host, a port)".into(),
                    );
                }
                ConnectFailureKind::TlsCertificate => {
                    "the broker's certificate did not verify: pass its CA with --ca FILE, \
                     and check that the --url host is the certificate's name"
                }
                ConnectFailureKind::Dns => "the host name in --url does not resolve: check it",
                ConnectFailureKind::Refused => {
                    "nothing listens there: check that the broker is running and the --url port"
                }
                ConnectFailureKind::Tls => "the TLS handshake failed: check that the broker speaks wss://",
                ConnectFailureKind::HttpStatus(_) | ConnectFailureKind::Upgrade => {
                    "the server did not accept a WebSocket there: check the --url path"
                }
                ConnectFailureKind::Proxy(407) => {
                    "the proxy refused its credentials: check the user and password in HTTPS_PROXY/HTTP_PROXY"
                }
                ConnectFailureKind::Proxy(_) => {
                    "the proxy refused the tunnel: check HTTPS_PROXY/HTTP_PROXY and NO_PROXY"
                }
                ConnectFailureKind::Timeout | ConnectFailureKind::Network => {
                    "the network failed: check that the broker is reachable, then retry"
                }
            };
            hint.to_owned()
        }
        Some(Ended::Rejected { rejection, .. }) => match rejection.code.as_str() {
            "timestamp_skew" => "the broker says our clock is wrong: fix the system clock".into(),
            "capacity" => "the mesh is full: retry later".into(),
            _ if code == EXIT_REJECTED => {
                "the broker will not accept this identity: check the mesh membership and the key".into()
            }
            _ => "retry later".into(),
        },
        Some(Ended::Closed(c)) if c.reason == "session_replaced" => {
            "another connection took this session over: stop the other one first".into()
        }
        Some(Ended::Closed(c)) if c.code == 4001 => {
            "the mesh's operator kicked this session: run the command again to rejoin".into()
        }
        Some(Ended::TooLarge(_)) => {
            "a message larger than the client accepts keeps arriving: raise the size limit".into()
        }
        _ if code == EXIT_REJECTED => "the broker stopped us for good; see the reason above".into(),
        _ => "check that the broker is running and reachable, then retry".into(),
    };
    (code, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::lifecycle::PeerClose;

    #[test]
    fn a_kick_exits_as_permanent_and_says_how_to_rejoin() {
        let kicked = StopReason::Permanent {
            failure: Ended::Closed(PeerClose {
                code: 4001,
                reason: "kicked".into(),
            }),
        };
        let (code, hint) = stop_hint(&kicked);
        assert_eq!(code, EXIT_REJECTED);
        assert!(hint.contains("kicked this session"), "{hint}");
    }
}
