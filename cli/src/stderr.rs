//! Standard error that a closed pipe cannot take down.
//!
//! A broker started by a supervisor that later went away, or piped into a reader
//! that stopped (`tether broker 2>&1 | head`), writes its log into a closed pipe.
//! `eprintln!` panics on that, and so did the log: tracing-subscriber reports a
//! failed write with `eprintln!`. A panic in a connection task left its client
//! with a bare 1006; one in the main task stopped the broker without its 1001s.
//! Losing the log is the lesser harm, so a closed pipe counts as written.
//!
//! Standard output gets the same rule, and remembers it: `tether listen | head`
//! must end when `head` does, closing its session, instead of panicking in
//! `println!` (or printing into the void for ever).

use std::sync::atomic::{AtomicBool, Ordering};

use std::io::{self, Write};

/// Writes to the process's stderr; `EPIPE` counts as written, any other error is
/// returned.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        closed_is_written(io::stderr().write(buf), buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        closed_is_written(io::stderr().flush().map(|()| 0), 0).map(|_| ())
    }
}

/// Set once a write to stdout found its reader gone.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader has gone away: a command that only prints should stop.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// Writes to the process's stdout; `EPIPE` counts as written and is remembered
/// (see [`stdout_gone`]), any other error is returned.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        closed_is_written(note_gone(io::stdout().write(buf)), buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        closed_is_written(note_gone(io::stdout().flush().map(|()| 0)), 0).map(|_| ())
    }
}

fn note_gone(result: io::Result<usize>) -> io::Result<usize> {
    if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
    result
}

fn closed_is_written(result: io::Result<usize>, len: usize) -> io::Result<usize> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(len),
        other => other,
    }
}

/// `eprintln!` through [`Stderr`], ignoring what cannot be written: a message
/// nobody can read is no reason to stop.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::stderr::Stderr, $($arg)*);
    }};
}
pub(crate) use say;

/// `println!` through [`Stdout`]: a closed pipe does not panic, and is
/// remembered so a printing loop can stop (see [`stdout_gone`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::stderr::Stdout, $($arg)*);
    }};
}
pub(crate) use out;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_counts_as_written_and_other_errors_do_not() {
        let closed = Err(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(closed_is_written(closed, 7).unwrap(), 7);
        let other = Err(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(closed_is_written(other, 7).is_err());
        assert_eq!(closed_is_written(Ok(3), 7).unwrap(), 3);
    }
}
