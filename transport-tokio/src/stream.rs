//! The socket under the WebSocket: plain TCP, or TLS over it in a box.
//!
//! tokio-tungstenite's `MaybeTlsStream<TcpStream>` keeps rustls' client state
//! inline, so every `ws://` connection carried about 1 070 bytes of TLS state it
//! never used (the stream was 1 112 bytes, the TCP socket in it 40). Here the
//! TLS stream is boxed: a plain connection holds the socket alone, and a `wss://`
//! one holds one more allocation of the same bytes. tether-mio boxes its TLS
//! stream the same way.
//!
//! The connect path is tokio-tungstenite's, step for step (TCP with Nagle off,
//! then rustls with the attempt's configuration, then the upgrade), and its
//! errors are the same `tungstenite::Error`s, so tether-host classifies a
//! failed attempt the same whichever path made it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::{self, error::TlsError};

/// A connection's byte stream.
pub(crate) enum Socket {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`: boxed, as rustls' state is large and plain connections have none.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Socket {
    /// Opens TCP to `host:port` (an IP literal without brackets, or a name to
    /// resolve), with Nagle's algorithm off: frames are small and latency matters
    /// more than packet count.
    pub(crate) async fn tcp(host: &str, port: u16) -> Result<TcpStream, tungstenite::Error> {
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// `tcp` as it is, or with TLS to `host` over it when `tls` is given.
    pub(crate) async fn secure(
        tcp: TcpStream,
        host: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Socket, tungstenite::Error> {
        let Some(config) = tls else {
            return Ok(Socket::Plain(tcp));
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|_| TlsError::InvalidDnsName)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(Socket::Tls(Box::new(tls)))
    }
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Plain(s) => s.is_write_vectored(),
            Socket::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
