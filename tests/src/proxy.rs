//! An HTTP CONNECT proxy on 127.0.0.1 port 0 for the S8 scenarios: it records
//! every CONNECT it is asked for (target and `Proxy-Authorization`), checks
//! credentials when told to, refuses on demand, and otherwise tunnels bytes
//! both ways. Tests wait on its records, never on the clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::e2e::PATIENCE;
use crate::stand_in::Listening;

/// How the proxy answers a CONNECT.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Tunnels every CONNECT.
    Open,
    /// Tunnels only a CONNECT carrying `Proxy-Authorization: Basic` of these
    /// `user:password`; 407 otherwise.
    Basic(String),
    /// Answers every CONNECT with this status.
    Refuse(u16),
}

/// One CONNECT the proxy was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The request target (`host:port`).
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status the proxy answered.
    pub status: u16,
}

/// A running proxy; stopped when dropped.
pub struct ConnectProxy {
    listening: Listening,
    seen: mpsc::UnboundedReceiver<Seen>,
    accepted: Arc<AtomicUsize>,
}

impl ConnectProxy {
    /// Starts a proxy answering as `mode` says.
    pub async fn start(mode: Mode) -> ConnectProxy {
        let (tx, seen) = mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let listening = Listening::start(move |client| {
            counter.fetch_add(1, Ordering::SeqCst);
            serve(client, mode.clone(), tx.clone())
        })
        .await;
        ConnectProxy {
            listening,
            seen,
            accepted,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listening.addr())
    }

    /// The same with `user:password@` in it.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.listening.addr())
    }

    /// The next CONNECT it answered; panics after [`PATIENCE`].
    pub async fn next_connect(&mut self) -> Seen {
        match tokio::time::timeout(PATIENCE, self.seen.recv()).await {
            Ok(Some(seen)) => seen,
            _ => panic!("the proxy was asked for no CONNECT"),
        }
    }

    /// TCP connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The request head: up to its blank line, at most 8 KiB.
async fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = client.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 8 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = head.split_off(end + 4);
            return Some((String::from_utf8_lossy(&head).into_owned(), rest));
        }
    }
}

async fn serve(mut client: TcpStream, mode: Mode, seen: mpsc::UnboundedSender<Seen>) {
    let Some((head, early)) = read_head(&mut client).await else {
        return;
    };
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let mut parts = request.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_owned());
    let authorization = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let status = match (&mode, method) {
        (_, m) if m != "CONNECT" => 405,
        (Mode::Refuse(code), _) => *code,
        (Mode::Basic(credentials), _) => {
            use base64::Engine;
            let wanted = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            );
            if authorization.as_deref() == Some(wanted.as_str()) {
                200
            } else {
                407
            }
        }
        (Mode::Open, _) => 200,
    };
    let upstream = if status == 200 {
        TcpStream::connect(target.as_str()).await.ok()
    } else {
        None
    };
    let status = if status == 200 && upstream.is_none() {
        502
    } else {
        status
    };
    let answer = match status {
        200 => "HTTP/1.1 200 Connection established\r\n\r\n".to_owned(),
        407 => "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n".to_owned(),
        code => format!("HTTP/1.1 {code} Refused\r\nContent-Length: 0\r\n\r\n"),
    };
    let _ = seen.send(Seen {
        target,
        authorization,
        status,
    });
    if client.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let Some(mut upstream) = upstream else {
        let _ = client.shutdown().await;
        return;
    };
    if upstream.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
