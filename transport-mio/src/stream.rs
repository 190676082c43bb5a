//! The byte stream under a WebSocket: plain TCP or rustls over TCP, both
//! non-blocking (every call may end in `WouldBlock`).

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::{ClientConnection, StreamOwned};

/// rustls over a mio socket.
pub(crate) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A connected socket, with or without TLS.
pub(crate) enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`; boxed because rustls' state is large and plain sockets are the
    /// common case when many connections share a reactor.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The socket, to (de)register it with the poller.
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &mut tls.sock,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A socket being upgraded: every byte the handshake reads is kept, so the
/// open socket can be rebuilt with the configured read buffer instead of the
/// handshake's 4 KiB one (see `tether_host::after_headers`).
pub(crate) struct Recording {
    pub stream: Stream,
    /// Everything read so far: the response, and any frames behind it.
    pub read: Vec<u8>,
}

impl Recording {
    pub(crate) fn new(stream: Stream) -> Self {
        Recording {
            stream,
            read: Vec::new(),
        }
    }
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.read.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
