//! One-line errors with an exit code that says whose fault it was.

use std::fmt;
use std::process::ExitCode;

use tether_tokio::{ClientError, ConnectError};

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

    /// A connect failure, permanent or transient.
    pub fn connect(e: ConnectError) -> Self {
        let code = if e.is_permanent() {
            EXIT_REJECTED
        } else {
            EXIT_TRANSIENT
        };
        let hint = if code == EXIT_REJECTED {
            "the broker will not accept this identity: check the mesh membership and the key"
        } else {
            "check that the broker is running and reachable, then retry"
        };
        Failure {
            what: e.to_string(),
            hint: hint.into(),
            code,
        }
    }

    /// A failed send, request or command.
    pub fn client(what: &str, e: ClientError) -> Self {
        let code = match &e {
            ClientError::Failed(f) if f.permanent => EXIT_REJECTED,
            _ => EXIT_TRANSIENT,
        };
        Failure {
            what: format!("{what} failed: {e}"),
            hint: "retry; if it keeps failing, check the broker's logs".into(),
            code,
        }
    }

    /// Prints the one line and returns the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.hint)
    }
}
