//! What the tests of a program that runs this broker need to see it from
//! outside (feature `testing`, off by default; not part of serving).
//!
//! [`RawPeer`] is a bare WebSocket peer over blocking std TCP: the upgrade, and
//! then the frames exactly as the broker writes them, with no client library in
//! between that could answer a close, retry or rewrite a code. The broker's own
//! tests, the `tether` binary's and the end-to-end suites use it to check what
//! goes out on the wire (`1001 shutting down` on SIGTERM, never a bare EOF) and
//! to hold many idle connections cheaply.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read waits before it fails: a bound on a hang, not a pace.
pub const READ_PATIENCE: Duration = Duration::from_secs(10);

/// The most a frame may carry before [`RawPeer::read_close`] refuses it: the
/// length comes from the peer and is not allocated unchecked.
const MAX_FRAME: u64 = 16 * 1024 * 1024;

/// The longest upgrade answer read before giving up on it.
const MAX_HEAD: usize = 16 * 1024;

/// An upgraded WebSocket connection that does nothing on its own: it sends no
/// frame, answers no ping and no close, and reads only when asked.
#[derive(Debug)]
pub struct RawPeer {
    tcp: TcpStream,
}

impl RawPeer {
    /// Connects to `url` (`ws://host:port/path`; a bare `host:port` means the
    /// path `/ws`) and upgrades, with reads bounded by [`READ_PATIENCE`]. An
    /// answer other than `101` is an error carrying its first line.
    pub fn connect(url: &str) -> io::Result<RawPeer> {
        if url.starts_with("wss://") {
            return Err(invalid("a raw peer speaks plain ws:// only"));
        }
        let rest = url.strip_prefix("ws://").unwrap_or(url);
        let (host, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/ws"),
        };
        let mut tcp = TcpStream::connect(host)?;
        tcp.set_read_timeout(Some(READ_PATIENCE))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())?;
        // The answer ends with an empty line; byte by byte so nothing after it is taken.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Err(invalid("the upgrade answer has no end"));
            }
            tcp.read_exact(&mut byte)?;
            head.push(byte[0]);
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            let text = String::from_utf8_lossy(&head);
            let first = text.lines().next().unwrap_or_default();
            return Err(invalid(&format!("upgrade refused: {first}")));
        }
        Ok(RawPeer { tcp })
    }

    /// Reads frames until a close frame and returns its code and reason (1005,
    /// "no status", for a close without a code); other frames are skipped. The
    /// connection ending first is an `UnexpectedEof` error: the broker went
    /// away without a close frame.
    pub fn read_close(&mut self) -> io::Result<(u16, String)> {
        loop {
            let mut header = [0u8; 2];
            self.tcp.read_exact(&mut header)?;
            let opcode = header[0] & 0x0f;
            let masked = header[1] & 0x80 != 0;
            let len = match header[1] & 0x7f {
                126 => {
                    let mut ext = [0u8; 2];
                    self.tcp.read_exact(&mut ext)?;
                    u64::from(u16::from_be_bytes(ext))
                }
                127 => {
                    let mut ext = [0u8; 8];
                    self.tcp.read_exact(&mut ext)?;
                    u64::from_be_bytes(ext)
                }
                short => u64::from(short),
            };
            if len > MAX_FRAME {
                return Err(invalid(&format!("a frame of {len} bytes")));
            }
            let mut mask = [0u8; 4];
            if masked {
                self.tcp.read_exact(&mut mask)?;
            }
            let len = usize::try_from(len).map_err(|_| invalid("a frame too large for memory"))?;
            let mut payload = vec![0u8; len];
            self.tcp.read_exact(&mut payload)?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            if opcode == 0x8 {
                return Ok(match payload.get(..2) {
                    Some(&[hi, lo]) => (
                        u16::from_be_bytes([hi, lo]),
                        String::from_utf8_lossy(&payload[2..]).into_owned(),
                    ),
                    _ => (1005, String::new()),
                });
            }
        }
    }

    /// The socket, to set another timeout or read and write by hand.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
