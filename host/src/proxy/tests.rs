use std::io::{self, Read, Write};

use super::*;

fn env(https: Option<&str>, http: Option<&str>, all: Option<&str>, no: Option<&str>) -> ProxyEnv {
    ProxyEnv {
        https_proxy: https.map(str::to_owned),
        http_proxy: http.map(str::to_owned),
        all_proxy: all.map(str::to_owned),
        no_proxy: no.map(str::to_owned),
    }
}

fn chosen(secure: bool, host: &str, port: u16, env: &ProxyEnv) -> Option<String> {
    proxy_for(secure, host, port, env)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|p| format!("{}:{}", p.host(), p.port()))
}

#[test]
fn the_scheme_picks_its_variable_and_all_proxy_is_the_fallback() {
    // proves S8: wss → HTTPS_PROXY, ws → HTTP_PROXY, ALL_PROXY for either
    let e = env(Some("http://s:3128"), Some("http://p:8080"), Some("a:1"), None);
    assert_eq!(chosen(true, "h", 443, &e).as_deref(), Some("s:3128"));
    assert_eq!(chosen(false, "h", 80, &e).as_deref(), Some("p:8080"));
    let e = env(None, None, Some("a:1"), None);
    assert_eq!(chosen(true, "h", 443, &e).as_deref(), Some("a:1"));
    assert_eq!(chosen(false, "h", 80, &e).as_deref(), Some("a:1"));
    let e = env(Some("http://s:3128"), None, None, None);
    assert_eq!(chosen(false, "h", 80, &e), None, "HTTPS_PROXY is not for ws:");
    assert_eq!(chosen(true, "h", 443, &ProxyEnv::default()), None);
}

#[test]
fn no_proxy_names_domains_addresses_networks_and_ports() {
    // proves S8: NO_PROXY bypasses the proxy
    let no = "example.org, .internal  10.0.0.0/8,[::1],127.0.0.1:9000,*.corp";
    for (host, port) in [
        ("example.org", 443),
        ("a.b.example.org", 443),
        ("EXAMPLE.ORG", 443),
        ("x.internal", 80),
        ("internal", 80),
        ("10.1.2.3", 80),
        ("::1", 80),
        ("[::1]", 80),
        ("127.0.0.1", 9000),
        ("svc.corp", 80),
    ] {
        assert!(bypasses(no, host, port), "{host}:{port}");
    }
    for (host, port) in [
        ("badexample.org", 443),
        ("example.org.evil", 443),
        ("11.0.0.1", 80),
        ("127.0.0.1", 9001),
        ("::2", 80),
    ] {
        assert!(!bypasses(no, host, port), "{host}:{port}");
    }
    assert!(bypasses("*", "anything", 1));
    assert!(!bypasses("", "anything", 1));
    assert!(!bypasses("10.0.0.0/99, .", "10.0.0.1", 1));
    let e = env(Some("http://s:1"), None, None, Some("example.org"));
    assert_eq!(chosen(true, "api.example.org", 443, &e), None);
    assert_eq!(chosen(true, "other.org", 443, &e).as_deref(), Some("s:1"));
}

#[test]
fn proxy_urls_parse_with_credentials_ports_and_ipv6() {
    let p = ProxyUrl::parse("http://us%40er:p%3Ass@proxy.example:3128/").unwrap();
    assert_eq!((p.host(), p.port()), ("proxy.example", 3128));
    assert_eq!(p.credentials.as_deref(), Some("us@er:p:ss"));
    let p = ProxyUrl::parse("HTTP://[::1]:8080").unwrap();
    assert_eq!((p.host(), p.port(), p.has_credentials()), ("::1", 8080, false));
    assert_eq!(ProxyUrl::parse("proxy").unwrap().port(), 80);
    for bad in [
        "https://p:1",
        "socks5://p:1",
        "http://p:99999",
        "http://p:x",
        "http://:1",
        "http://p:1/path",
        "http://u:%zz@p:1",
        "http://[::1",
    ] {
        assert!(ProxyUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn proxy_credentials_are_never_printed() {
    // proves S8: Debug, Display and errors redact the credentials
    let secret = "hunter2";
    let url = format!("http://alice:{secret}@proxy:3128");
    let p = ProxyUrl::parse(&url).unwrap();
    let e = env(Some(&url), Some(&url), Some(&url), None);
    let shown = [
        format!("{p}"),
        format!("{p:?}"),
        format!("{e:?}"),
        format!("{:?}", Proxy::Always(p.clone())),
        format!("{:?}", Proxy::Rules(e.clone())),
        format!("{:?}", Tunnel::new(&p, "h", 1)),
        format!(
            "{:?}",
            crate::Transport {
                proxy: Proxy::Always(p.clone()),
                ..Default::default()
            }
        ),
        ProxyUrl::parse(&format!("http://alice:{secret}@proxy:x"))
            .unwrap_err()
            .to_string(),
        ProxyUrl::parse(&format!("ftp://alice:{secret}@proxy:1"))
            .unwrap_err()
            .to_string(),
    ];
    for s in shown {
        assert!(!s.contains(secret), "{s}");
        assert!(!s.contains("alice"), "{s}");
    }
    assert_eq!(p.to_string(), "http://***@proxy:3128");
}

/// A stream that hands out `reply` a few bytes at a time and blocks in between.
struct Scripted {
    written: Vec<u8>,
    reply: Vec<u8>,
    chunk: usize,
    block_next: bool,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.block_next) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.block_next = true;
        let n = self.chunk.min(buf.len()).min(self.reply.len());
        buf[..n].copy_from_slice(&self.reply[..n]);
        self.reply.drain(..n);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(7);
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(reply: &str, credentials: bool) -> (io::Result<()>, String) {
    let url = if credentials {
        "http://alice:s3cret@p:1"
    } else {
        "http://p:1"
    };
    let proxy = ProxyUrl::parse(url).unwrap();
    let mut tunnel = Tunnel::new(&proxy, "127.0.0.1", 4443);
    let mut stream = Scripted {
        written: Vec::new(),
        reply: reply.as_bytes().to_vec(),
        chunk: 5,
        block_next: false,
    };
    let result = loop {
        match tunnel.drive(&mut stream) {
            Ok(None) => break Ok(()),
            Ok(Some(Wants::Read)) if stream.reply.is_empty() && !stream.block_next => {
                break Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(Some(_)) => {}
            Err(e) => break Err(e),
        }
    };
    (result, String::from_utf8(stream.written).unwrap())
}

#[test]
fn the_connect_exchange_sends_basic_credentials_and_reads_the_answer() {
    // proves S8: CONNECT with Proxy-Authorization: Basic, resumable over a non-blocking stream
    let (result, sent) = run("HTTP/1.1 200 Connection established\r\n\r\n", true);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        sent,
        "CONNECT 127.0.0.1:4443 HTTP/1.1\r\nHost: 127.0.0.1:4443\r\n\
         Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
    );
    let (result, sent) = run("HTTP/1.0 200 OK\r\nVia: x\r\n\r\n", false);
    assert!(result.is_ok(), "{result:?}");
    assert!(!sent.contains("Proxy-Authorization"));
}

#[test]
fn a_refused_or_garbled_answer_is_a_typed_error() {
    // proves S8: a refused CONNECT says the proxy's status
    let refused = |reply: &str| {
        let err = run(reply, true).0.unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<ProxyError>());
        match inner {
            Some(ProxyError::Refused { status, .. }) => Some(*status),
            _ => None,
        }
    };
    assert_eq!(
        refused("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
        Some(407)
    );
    assert_eq!(refused("HTTP/1.1 403 Forbidden\r\nX: y\r\n\r\n"), Some(403));
    for garbled in [
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\nextra",
    ] {
        let err = run(garbled, false).0.unwrap_err();
        assert!(
            matches!(
                err.get_ref().and_then(|e| e.downcast_ref::<ProxyError>()),
                Some(ProxyError::BadReply(_))
            ),
            "{garbled}: {err}"
        );
    }
    let endless = format!("HTTP/1.1 200 OK\r\n{}", "X: y\r\n".repeat(2000));
    assert!(run(&endless, false).0.is_err());
}
