//! The WebSocket side both hosts share, written once: where an attempt goes
//! (URL checks, the upgrade request with the attempt's headers), what a
//! tungstenite message or error means to the machine, and what the machine's
//! socket work means to tungstenite.

use tether_proto::lifecycle::{ConnectFailureKind, Event, Frame, Io, SocketId};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// The reason reported when a socket is dropped for a full write queue.
pub const WRITE_QUEUE_FULL: &str = "write queue full";

/// True for a `wss:` URL, whatever its case (URL schemes are case-insensitive,
/// RFC 3986 §3.1): `WSS://` must not silently go out in plain text.
pub fn is_secure(url: &str) -> bool {
    url.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("wss:"))
}

/// What an upgrade read past the end of the server's response headers: the
/// first frames, when the server sent some at once. `None` until `read` holds
/// the whole header block.
///
/// tungstenite keeps the 4 KiB buffer its handshake read into as the
/// connection's read buffer for life, whatever `read_buffer_size` says; a host
/// that rebuilds the socket from this tail (`WebSocket::from_partially_read`)
/// gets the configured size, 2 KiB less per idle connection by default. Lines
/// end in `\n` with an optional `\r` and the block ends at the first empty
/// line, as for httparse, tungstenite's parser.
pub fn after_headers(read: &[u8]) -> Option<&[u8]> {
    let mut line_start = 0;
    for (i, byte) in read.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = &read[line_start..i];
        if line_start > 0 && (line.is_empty() || line == b"\r") {
            return Some(&read[i + 1..]);
        }
        line_start = i + 1;
    }
    None
}

/// Where one attempt goes, checked before any socket is opened.
#[derive(Debug)]
pub struct Target {
    /// The upgrade request, the attempt's headers in it.
    pub request: Request,
    /// `wss:`: TLS with certificate verification (X5).
    pub secure: bool,
    /// The host name or IP literal, without IPv6 brackets.
    pub host: String,
    /// The port, 443 or 80 unless the URL names one.
    pub port: u16,
}

impl Target {
    /// Checks `url` and builds the upgrade request with `headers` (S1: the
    /// attempt's fresh credentials). The error is the reason the attempt fails.
    pub fn new(url: &str, headers: &[(String, String)]) -> Result<Target, String> {
        // tungstenite matches the scheme case-sensitively and would refuse
        // `WSS://`; the scheme is case-insensitive (RFC 3986 §3.1), so it goes
        // out lower-case.
        let lowered;
        let url = match url.split_once("://") {
            Some((scheme, rest)) if scheme.bytes().any(|b| b.is_ascii_uppercase()) => {
                lowered = format!("{}://{rest}", scheme.to_ascii_lowercase());
                lowered.as_str()
            }
            _ => url,
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("bad header name {name}: {e}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| format!("bad header value for {name}: {e}"))?;
            request.headers_mut().insert(name, value);
        }
        let uri = request.uri();
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            _ => return Err(format!("bad URL {url}: the scheme must be ws or wss")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("bad URL {url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        Ok(Target {
            request,
            secure,
            host,
            port,
        })
    }
}

/// What a message read from the socket means to the machine; `None` for the
/// raw frames tungstenite never hands to readers.
///
/// A close frame becomes `Closed` with its code (1005 without one); the host
/// then answers it (tungstenite queues the reply) and flushes before it lets
/// the socket go, so the peer sees its own code echoed, not 1006.
pub fn inbound(socket: SocketId, message: Message) -> Option<Event> {
    let frame = match message {
        Message::Text(text) => Frame::Text(text.as_str().to_owned()),
        Message::Binary(bytes) => Frame::Binary(bytes.to_vec()),
        Message::Ping(_) => Frame::Ping,
        Message::Pong(_) => Frame::Pong,
        Message::Frame(_) => return None,
        Message::Close(frame) => {
            let (code, reason) = frame.map_or((1005, String::new()), |f| {
                (u16::from(f.code), f.reason.as_str().to_owned())
            });
            return Some(Event::Closed { socket, code, reason });
        }
    };
    Some(Event::Frame { socket, frame })
}

/// The close a read or write error means: 1009 for a message over the size
/// limit, 1006 (lost without a close frame) for everything else.
pub fn closed_by(socket: SocketId, error: &tungstenite::Error) -> Event {
    let (code, reason) = match error {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => (1006, String::new()),
        tungstenite::Error::Capacity(_) => (1009, error.to_string()),
        _ => (1006, error.to_string()),
    };
    Event::Closed { socket, code, reason }
}

/// The close reported when the stream ends without a close frame.
pub fn stream_ended(socket: SocketId) -> Event {
    Event::Closed {
        socket,
        code: 1006,
        reason: String::new(),
    }
}

/// The close reported for a socket dropped because its write queue overflowed.
pub fn queue_overflowed(socket: SocketId) -> Event {
    Event::Closed {
        socket,
        code: 1006,
        reason: WRITE_QUEUE_FULL.to_owned(),
    }
}

/// The socket and message of a write the machine asked for; any other socket
/// work (open, close, terminate) is handed back.
pub fn outbound(io: Io) -> Result<(SocketId, Message), Io> {
    match io {
        Io::SendText { socket, text } => Ok((socket, Message::Text(text.into()))),
        Io::SendPing { socket } => Ok((socket, Message::Ping(Default::default()))),
        other => Err(other),
    }
}

/// The close frame for the machine's `CloseSocket`.
pub fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The bytes a message holds, for the write queue's byte bound.
pub fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(f) => 2 + f.as_ref().map_or(0, |f| f.reason.len()),
        Message::Frame(f) => f.len(),
    }
}

/// What kind of connect failure a transport error is: the one classification
/// both hosts use, so the same broken URL, dead port or bad certificate gets
/// the same verdict from the policy whichever host ran into it.
///
/// rustls errors arrive wrapped in an IO error (tokio-rustls, and rustls'
/// own `StreamOwned` under the blocking host); an invalid certificate is told
/// apart from every other TLS failure because it stops by default. A failed
/// name lookup is recognised by the text the standard library gives it, the
/// only mark `getaddrinfo`'s errors carry.
pub fn connect_failure_kind(error: &tungstenite::Error) -> ConnectFailureKind {
    use tungstenite::Error;
    match error {
        Error::Url(_) => ConnectFailureKind::Configuration,
        Error::Http(response) => ConnectFailureKind::HttpStatus(response.status().as_u16()),
        Error::HttpFormat(_) | Error::Protocol(_) | Error::Utf8(_) | Error::AttackAttempt => {
            ConnectFailureKind::Upgrade
        }
        Error::Tls(_) => ConnectFailureKind::Tls,
        Error::Io(io) => io_failure_kind(io),
        Error::ConnectionClosed | Error::AlreadyClosed | Error::Capacity(_) | Error::WriteBufferFull(_) => {
            ConnectFailureKind::Network
        }
    }
}

fn io_failure_kind(io: &std::io::Error) -> ConnectFailureKind {
    use std::io::ErrorKind;
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                ConnectFailureKind::TlsCertificate
            }
            _ => ConnectFailureKind::Tls,
        };
    }
    if let Some(proxy) = io
        .get_ref()
        .and_then(|e| e.downcast_ref::<crate::proxy::ProxyError>())
    {
        return match proxy {
            crate::proxy::ProxyError::Refused { status, .. } => ConnectFailureKind::Proxy(*status),
            crate::proxy::ProxyError::BadUrl { .. } => ConnectFailureKind::Configuration,
            crate::proxy::ProxyError::BadReply(_) => ConnectFailureKind::Network,
        };
    }
    match io.kind() {
        ErrorKind::ConnectionRefused => ConnectFailureKind::Refused,
        ErrorKind::TimedOut => ConnectFailureKind::Timeout,
        ErrorKind::InvalidInput if io.to_string().contains("invalid socket address") => {
            ConnectFailureKind::Configuration
        }
        _ if io.to_string().starts_with("failed to lookup address information") => ConnectFailureKind::Dns,
        _ => ConnectFailureKind::Network,
    }
}

/// The event for a socket that could not be opened because of `error`.
pub fn connect_failed(socket: SocketId, error: &tungstenite::Error) -> Event {
    Event::ConnectFailed {
        socket,
        kind: connect_failure_kind(error),
        reason: error.to_string(),
    }
}

/// The event for a socket that was never tried: the URL, a header or the TLS
/// set-up is unusable (the reason says which).
pub fn misconfigured(socket: SocketId, reason: String) -> Event {
    Event::ConnectFailed {
        socket,
        kind: ConnectFailureKind::Configuration,
        reason,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tail_after_the_response_headers_is_what_the_server_sent_next() {
        let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(after_headers(response), Some(&b""[..]));
        let with_frame = [&response[..], b"\x81\x02hi"].concat();
        assert_eq!(after_headers(&with_frame), Some(&b"\x81\x02hi"[..]));
        assert_eq!(
            after_headers(b"HTTP/1.1 101 OK\nUpgrade: websocket\n\nrest"),
            Some(&b"rest"[..])
        );
        assert_eq!(after_headers(b"HTTP/1.1 101 OK\r\nUpgrade: webs"), None);
        assert_eq!(after_headers(b""), None);
    }

    use super::*;

    #[test]
    fn transport_errors_are_classified_by_kind() {
        use std::io;
        use std::net::{TcpListener, ToSocketAddrs};
        // A port nobody listens on: refused, from the real socket call.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = tungstenite::Error::Io(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err());
        assert_eq!(
            connect_failure_kind(&refused),
            ConnectFailureKind::Refused,
            "{refused}"
        );
        // A name that cannot resolve (RFC 6761 reserves .invalid), from the real lookup.
        let lookup = ("tether-test.invalid", 80).to_socket_addrs().unwrap_err();
        let dns = tungstenite::Error::Io(lookup);
        assert_eq!(connect_failure_kind(&dns), ConnectFailureKind::Dns, "{dns}");
        // A bad scheme: tungstenite refuses the URL itself.
        let url = tungstenite::connect("http://127.0.0.1:1/").unwrap_err();
        assert_eq!(
            connect_failure_kind(&url),
            ConnectFailureKind::Configuration,
            "{url}"
        );
        // rustls' errors come wrapped in IO errors (tokio-rustls, StreamOwned).
        let tls = |e: rustls::Error| tungstenite::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e));
        let unknown_issuer = tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            connect_failure_kind(&unknown_issuer),
            ConnectFailureKind::TlsCertificate
        );
        let alert = tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(connect_failure_kind(&alert), ConnectFailureKind::Tls);
        let timeout = tungstenite::Error::Io(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(connect_failure_kind(&timeout), ConnectFailureKind::Timeout);
        let reset = tungstenite::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(connect_failure_kind(&reset), ConnectFailureKind::Network);
        let status = tungstenite::Error::Http(Box::new(
            tungstenite::http::Response::builder()
                .status(503)
                .body(None)
                .unwrap(),
        ));
        assert_eq!(connect_failure_kind(&status), ConnectFailureKind::HttpStatus(503));
        let upgrade =
            tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SecWebSocketAcceptKeyMismatch);
        assert_eq!(connect_failure_kind(&upgrade), ConnectFailureKind::Upgrade);
    }

    #[test]
    fn wss_is_detected_whatever_its_case() {
        // proves X5: an upper-case scheme still gets TLS
        for url in ["wss://h/ws", "WSS://h/ws", "WsS://h/ws"] {
            assert!(is_secure(url), "{url}");
            assert!(Target::new(url, &[]).map(|t| t.secure).unwrap_or(false), "{url}");
            // tungstenite refuses a scheme that is not lower-case.
            let scheme = Target::new(url, &[]).map(|t| t.request.uri().scheme_str().map(str::to_owned));
            assert_eq!(scheme.ok().flatten().as_deref(), Some("wss"), "{url}");
        }
        for url in ["ws://h/ws", "WS://h/ws", "http://h", "w"] {
            assert!(!is_secure(url), "{url}");
        }
    }

    #[test]
    fn a_target_carries_the_attempts_headers_and_default_ports() {
        // proves S1: the attempt's headers go on the upgrade request
        let headers = vec![("Authorization".to_owned(), "Bearer t1".to_owned())];
        let t = Target::new("wss://[::1]/ws", &headers).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.request.headers()["authorization"], "Bearer t1");
        let t = Target::new("ws://example.org/ws", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.host.as_str(), t.port, t.secure), ("example.org", 80, false));
        assert!(Target::new("http://example.org/", &[]).is_err());
        assert!(Target::new("ws://h/", &[("bad name".into(), "v".into())]).is_err());
    }

    #[test]
    fn errors_map_to_close_codes() {
        let s = SocketId(1);
        let code = |e: tungstenite::Error| match closed_by(s, &e) {
            Event::Closed { code, .. } => code,
            _ => 0,
        };
        assert_eq!(code(tungstenite::Error::ConnectionClosed), 1006);
        assert_eq!(
            code(tungstenite::Error::Capacity(
                tungstenite::error::CapacityError::MessageTooLong { size: 2, max_size: 1 }
            )),
            1009
        );
        assert_eq!(
            code(tungstenite::Error::Io(std::io::ErrorKind::BrokenPipe.into())),
            1006
        );
    }
}
