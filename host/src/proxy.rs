//! HTTP CONNECT proxies (S8), written once for both hosts.
//!
//! Two pieces, both free of sockets so they are tested alone: the decision
//! which proxy an attempt goes through ([`proxy_for`], a function of the
//! target and the environment's values), and the CONNECT exchange itself
//! ([`Tunnel`], driven over whatever byte stream the host has, blocking or
//! not). The host then runs TLS (for `wss:`) and the WebSocket upgrade through
//! the tunnel, so the proxy sees only the target's name and port and, for
//! `wss:`, ciphertext verified against the target's certificate.
//!
//! Proxy credentials are secrets: `Debug` and `Display` of every type here
//! print `***` in their place, and so do the errors.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;

use std::borrow::Cow;

use base64::Engine;

use crate::socket::Target;

/// Whether, and through which proxy, attempts go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// `HTTPS_PROXY` (for `wss:`) or `HTTP_PROXY` (for `ws:`), else
    /// `ALL_PROXY`, unless `NO_PROXY` names the host; lower-case names win over
    /// upper-case, as curl and Node read them. Read at every attempt, so a
    /// long-lived client follows a changed environment. The seed's default.
    #[default]
    Environment,
    /// The same rules over values given here instead of the process's
    /// environment (settings of an application's own, tests).
    Rules(ProxyEnv),
    /// Every attempt through this proxy, whatever the target.
    Always(ProxyUrl),
    /// Never through a proxy.
    Direct,
}

impl Proxy {
    /// The proxy an attempt to `target` goes through, `None` for a direct
    /// connection; an unusable proxy URL fails the attempt as misconfigured.
    pub fn for_target(&self, target: &Target) -> Result<Option<ProxyUrl>, ProxyError> {
        let env = match self {
            Proxy::Direct => return Ok(None),
            Proxy::Always(url) => return Ok(Some(url.clone())),
            Proxy::Rules(env) => Cow::Borrowed(env),
            Proxy::Environment => Cow::Owned(ProxyEnv::from_env()),
        };
        proxy_for(target.secure, &target.host, target.port, &env)
    }
}

/// The proxy settings of an environment: the values of its variables.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ProxyEnv {
    /// `https_proxy` / `HTTPS_PROXY`: the proxy for `wss:`.
    pub https_proxy: Option<String>,
    /// `http_proxy` / `HTTP_PROXY`: the proxy for `ws:`.
    pub http_proxy: Option<String>,
    /// `all_proxy` / `ALL_PROXY`: the proxy for either, when its own is unset.
    pub all_proxy: Option<String>,
    /// `no_proxy` / `NO_PROXY`: hosts reached directly (see [`bypasses`]).
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// This process's values; empty variables count as unset.
    pub fn from_env() -> ProxyEnv {
        let var = |name: &str| {
            [name.to_ascii_lowercase(), name.to_owned()]
                .into_iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        ProxyEnv {
            https_proxy: var("HTTPS_PROXY"),
            http_proxy: var("HTTP_PROXY"),
            all_proxy: var("ALL_PROXY"),
            no_proxy: var("NO_PROXY"),
        }
    }
}

impl fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| v.as_deref().map(redact);
        f.debug_struct("ProxyEnv")
            .field("https_proxy", &shown(&self.https_proxy))
            .field("http_proxy", &shown(&self.http_proxy))
            .field("all_proxy", &shown(&self.all_proxy))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// An HTTP proxy: where it listens, and the credentials it wants, if any.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    /// `user:password`, percent-decoded; sent as `Proxy-Authorization: Basic`.
    credentials: Option<String>,
}

/// Why a proxy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy URL does not parse (credentials in it are shown as `***`).
    #[error("bad proxy URL {url}: {why}")]
    BadUrl {
        /// The URL, credentials redacted.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The proxy answered the CONNECT with a status other than 2xx.
    #[error("the proxy refused CONNECT {target}: {status} {reason}")]
    Refused {
        /// Where the tunnel was to go.
        target: String,
        /// The proxy's HTTP status (407: credentials missing or wrong).
        status: u16,
        /// The proxy's reason phrase.
        reason: String,
    },
    /// The proxy's answer is not an HTTP response, or too long to be one.
    #[error("the proxy's answer to CONNECT is not HTTP: {0}")]
    BadReply(&'static str),
}

/// The proxy an attempt to `host:port` (`secure` for `wss:`) goes through
/// under `env`, or `None` for a direct connection: the whole decision, pure.
pub fn proxy_for(
    secure: bool,
    host: &str,
    port: u16,
    env: &ProxyEnv,
) -> Result<Option<ProxyUrl>, ProxyError> {
    if env.no_proxy.as_deref().is_some_and(|n| bypasses(n, host, port)) {
        return Ok(None);
    }
    let own = if secure { &env.https_proxy } else { &env.http_proxy };
    match own.as_deref().or(env.all_proxy.as_deref()) {
        Some(url) if !url.trim().is_empty() => ProxyUrl::parse(url).map(Some),
        _ => Ok(None),
    }
}

/// True when `no_proxy` names `host` (port `port`): `*` names every host; an
/// entry names a domain and its subdomains (a leading `.` or `*.` is
/// optional), an IP address, or an IP network in CIDR form, each optionally
/// with `:port`. Entries are separated by commas or spaces; case is ignored.
pub fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.to_ascii_lowercase();
            match ip {
                Some(ip) => ip_matches(&name, ip),
                None => {
                    let name = name.trim_start_matches('*').trim_start_matches('.');
                    let name = name.trim_end_matches('.');
                    !name.is_empty()
                        && (host == name || host.strip_suffix(name).is_some_and(|rest| rest.ends_with('.')))
                }
            }
        })
}

/// `name[:port]`, `[v6][:port]`; a bare IPv6 address has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip, bits) {
        (net, ip, None) => net == ip,
        (IpAddr::V4(net), IpAddr::V4(ip), Some(bits)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip), Some(bits)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// `url` with the user information replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***{}", &rest[at..]),
        None => rest.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest,
    }
}

impl ProxyUrl {
    /// Parses `http://[user[:password]@]host[:port][/]`, or the same without
    /// the scheme (curl's reading). Only plain HTTP proxies are spoken: TLS to
    /// the proxy and SOCKS are refused here rather than tried and failed.
    pub fn parse(url: &str) -> Result<ProxyUrl, ProxyError> {
        let bad = |why| ProxyError::BadUrl {
            url: redact(url),
            why,
        };
        let url_trimmed = url.trim();
        let rest = match url_trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(bad("only http:// proxies are supported")),
            None => url_trimmed,
        };
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => return Err(bad("a proxy URL has no path")),
            None => rest,
        };
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let decoded =
                    percent_decode(userinfo).ok_or_else(|| bad("bad %-escape in the credentials"))?;
                (Some(decoded), hostport)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or_else(|| bad("junk after the host"))?),
            };
            (addr, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number up to 65535"))?,
            None => 80,
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
            return Err(bad("no usable host"));
        }
        Ok(ProxyUrl {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// The proxy's host name or IP address (without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port (80 unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the proxy is sent credentials.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.credentials.is_some() { "***@" } else { "" };
        if self.host.contains(':') {
            write!(f, "http://{auth}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{auth}{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Longest CONNECT answer read; real ones are a line or two.
const MAX_REPLY: usize = 8 * 1024;

/// What a [`Tunnel`] waits for when it cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    /// The socket must take more of the request.
    Write,
    /// The proxy's answer is not complete yet.
    Read,
}

/// One CONNECT exchange: the request out, the proxy's answer in. Driven over
/// any byte stream; a non-blocking one makes it stop at [`Wants`] and resume.
pub struct Tunnel {
    request: Vec<u8>,
    written: usize,
    reply: Vec<u8>,
    target: String,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The request holds the credentials.
        f.debug_struct("Tunnel")
            .field("target", &self.target)
            .field("written", &self.written)
            .field("reply_bytes", &self.reply.len())
            .finish()
    }
}

impl Tunnel {
    /// The exchange that asks `proxy` for a tunnel to `host:port`.
    pub fn new(proxy: &ProxyUrl, host: &str, port: u16) -> Tunnel {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(credentials) = &proxy.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(credentials);
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        Tunnel {
            request: request.into_bytes(),
            written: 0,
            reply: Vec::new(),
            target,
        }
    }

    /// Moves the exchange on as far as `stream` allows: `Ok(None)` once the
    /// proxy said 2xx and the stream is a tunnel to the target, `Ok(Some(_))`
    /// when the stream would block. A refusal or a garbled answer is an IO
    /// error wrapping a [`ProxyError`] (so transport errors classify it, see
    /// `connect_failure_kind`).
    pub fn drive<S: Read + Write>(&mut self, stream: &mut S) -> io::Result<Option<Wants>> {
        while self.written < self.request.len() {
            match stream.write(&self.request[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Some(Wants::Write)),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.request.len() {
            let _ = stream.flush();
        }
        let mut buf = [0u8; 1024];
        loop {
            let room = MAX_REPLY.saturating_sub(self.reply.len()).min(buf.len());
            if room == 0 {
                return Err(proxy_error(ProxyError::BadReply("longer than 8 KiB")));
            }
            match stream.read(&mut buf[..room]) {
                Ok(0) => {
                    return Err(proxy_error(ProxyError::BadReply(
                        "the proxy closed the connection",
                    )))
                }
                Ok(n) => {
                    self.reply.extend_from_slice(&buf[..n]);
                    if let Some(end) = find_end(&self.reply) {
                        return self.answer(end).map(|()| None).map_err(proxy_error);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Some(Wants::Read)),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn answer(&self, end: usize) -> Result<(), ProxyError> {
        // Neither TLS nor the upgrade lets the server speak first, so anything
        // after the answer is a proxy out of step with us.
        if end != self.reply.len() {
            return Err(ProxyError::BadReply(
                "data after the answer, before the tunnel was used",
            ));
        }
        let head = std::str::from_utf8(&self.reply[..end]).map_err(|_| ProxyError::BadReply("not UTF-8"))?;
        let line = head.lines().next().unwrap_or("");
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(ProxyError::BadReply("no HTTP/1.x status line"));
        }
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..=999).contains(s))
            .ok_or(ProxyError::BadReply("no status code"))?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(ProxyError::Refused {
            target: self.target.clone(),
            status,
            reason: parts.next().unwrap_or("").trim().chars().take(200).collect(),
        })
    }
}

fn find_end(reply: &[u8]) -> Option<usize> {
    reply.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn proxy_error(e: ProxyError) -> io::Error {
    io::Error::other(e)
}

#[cfg(test)]
mod tests;
