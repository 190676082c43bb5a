//! The shared transport config over both hosts, end to end: HTTP CONNECT
//! proxies for ws and wss (S8) through a proxy the test starts, and client
//! certificates (S9) against the reference broker requiring them.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tether_broker::{TlsFiles, TlsSetup};
use tether_proto::lifecycle::{ConnectFailureKind, Failure, StopReason};
use tether_proto::mesh::wire::Priority;
use tether_tests::e2e::*;
use tether_tests::hosts::{AnyClient, ConnectFailure, Host};
use tether_tests::on_both_hosts;
use tether_tests::proxy::{ConnectProxy, Mode};
use tether_tokio::{ClientCert, Proxy, ProxyEnv, ProxyUrl};

on_both_hosts!(
    ws_goes_through_the_connect_proxy_with_basic_credentials,
    wss_goes_through_the_https_proxy_and_verifies_the_broker,
    no_proxy_reaches_the_broker_directly,
    a_refused_connect_is_a_typed_connect_failure,
    a_broker_requiring_client_certificates_admits_only_a_client_with_one,
);

/// A CA, and the broker's certificate for 127.0.0.1 and a client's, both issued by it.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: issue(vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth),
        client: issue(vec!["tether-client".into()], ExtendedKeyUsagePurpose::ClientAuth),
    }
}

/// Writes the broker's PEM files into a directory of this test's own.
fn broker_files(name: &str, host: Host, pki: &Pki, require_client_cert: bool) -> TlsFiles {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{host:?}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    TlsFiles {
        cert_pem_path: write("cert.pem", &pki.server.0),
        key_pem_path: write("key.pem", &pki.server.1),
        client_ca_pem_path: require_client_cert.then(|| write("client-ca.pem", &pki.ca_pem)),
    }
}

fn connect_kind(f: &ConnectFailure) -> Option<ConnectFailureKind> {
    match f.reason.as_ref().and_then(StopReason::failure) {
        Some(Failure::ConnectFailed { kind, .. }) => Some(*kind),
        _ => None,
    }
}

fn broker_target(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

async fn ws_goes_through_the_connect_proxy_with_basic_credentials(host: Host) {
    // proves S8: ws tunnelled by CONNECT, with the URL's credentials as Basic
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut proxy = ConnectProxy::start(Mode::Basic("alice:s3cret".into())).await;
    let mut s = spec(&broker.url(), 1, "s1");
    s.transport.proxy = Proxy::Always(ProxyUrl::parse(&proxy.url_with("alice", "s3cret")).unwrap());
    let alice = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    let seen = proxy.next_connect().await;
    assert_eq!(seen.target, broker_target(&broker.url()));
    assert_eq!(seen.authorization.as_deref(), Some("Basic YWxpY2U6czNjcmV0"));
    assert_eq!(seen.status, 200);
    // The session runs through the tunnel.
    alice.send("*", "via the proxy", Priority::Next).await.unwrap();
    assert_eq!(proxy.connections(), 1);
    alice.close().await;
    broker.stop().await;
}

async fn wss_goes_through_the_https_proxy_and_verifies_the_broker(host: Host) {
    // proves S8: wss picks HTTPS_PROXY (not HTTP_PROXY); TLS runs through the
    // tunnel and still verifies the broker's certificate (X5)
    let pki = pki();
    let files = broker_files("proxy-wss", host, &pki, false);
    let broker = start_broker(broker_config(membership(1, &[])), Some(TlsSetup::Files(files))).await;
    let url = broker.url();
    assert!(url.starts_with("wss://"), "{url}");
    let mut proxy = ConnectProxy::start(Mode::Open).await;
    let env = ProxyEnv {
        https_proxy: Some(proxy.url()),
        // A dead port: were it used, nothing would connect.
        http_proxy: Some("http://127.0.0.1:1".into()),
        ..ProxyEnv::default()
    };
    let mut s = spec(&url, 1, "s1");
    s.transport.proxy = Proxy::Rules(env.clone());
    // Without the CA the tunnel opens but the certificate does not verify.
    match AnyClient::connect(host, s.clone()).await {
        Err(f) => assert_eq!(
            connect_kind(&f),
            Some(ConnectFailureKind::TlsCertificate),
            "{f:?}"
        ),
        Ok(_) => panic!("an unknown issuer was trusted through the proxy"),
    }
    assert_eq!(proxy.next_connect().await.target, broker_target(&url));
    s.transport.tls.extra_ca_pem.push(pki.ca_pem.clone());
    let alice = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    assert_eq!(proxy.next_connect().await.target, broker_target(&url));
    alice
        .send("*", "tls in the tunnel", Priority::Next)
        .await
        .unwrap();
    alice.close().await;
    broker.stop().await;
}

async fn no_proxy_reaches_the_broker_directly(host: Host) {
    // proves S8: NO_PROXY names the broker, so ALL_PROXY is not used for it
    let broker = start_broker(broker_config(membership(2, &[])), None).await;
    let mut proxy = ConnectProxy::start(Mode::Open).await;
    let through = ProxyEnv {
        all_proxy: Some(proxy.url()),
        no_proxy: Some("example.org".into()),
        ..ProxyEnv::default()
    };
    let mut s = spec(&broker.url(), 1, "s1");
    s.transport.proxy = Proxy::Rules(through.clone());
    let alice = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    assert_eq!(proxy.next_connect().await.status, 200, "ALL_PROXY is used for ws");
    let bypass = ProxyEnv {
        no_proxy: Some("example.org, 127.0.0.0/8".into()),
        ..through
    };
    let mut s = spec(&broker.url(), 2, "s2");
    s.transport.proxy = Proxy::Rules(bypass);
    let bob = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    bob.send("*", "direct", Priority::Next).await.unwrap();
    assert_eq!(proxy.connections(), 1, "bob went around the proxy");
    alice.close().await;
    bob.close().await;
    broker.stop().await;
}

async fn a_refused_connect_is_a_typed_connect_failure(host: Host) {
    // proves S8: a proxy's refusal is ConnectFailureKind::Proxy(status); 407
    // (credentials refused) stops, and the password is printed nowhere
    let broker = start_broker(broker_config(membership(1, &[])), None).await;
    let mut proxy = ConnectProxy::start(Mode::Basic("alice:s3cret".into())).await;
    let mut s = retrying_spec(spec(&broker.url(), 1, "s1"));
    s.transport.proxy = Proxy::Always(ProxyUrl::parse(&proxy.url_with("alice", "wrong-pw")).unwrap());
    // Bounded: were 407 retried, the first connect would never end.
    let f = match tokio::time::timeout(PATIENCE, AnyClient::connect(host, s)).await {
        Ok(Err(f)) => f,
        Ok(Ok(_)) => panic!("connected through a proxy that refused the credentials"),
        Err(_) => panic!("a proxy refusing the credentials was retried"),
    };
    assert_eq!(connect_kind(&f), Some(ConnectFailureKind::Proxy(407)), "{f:?}");
    assert!(matches!(f.reason, Some(StopReason::Permanent { .. })), "{f:?}");
    assert!(f.permanent);
    assert!(!format!("{f:?}").contains("wrong-pw"), "{f:?}");
    assert_eq!(proxy.next_connect().await.status, 407);

    // A proxy that cannot reach the target (502) is a transient failure.
    let mut refusing = ConnectProxy::start(Mode::Refuse(502)).await;
    let mut s = spec(&broker.url(), 1, "s1");
    s.transport.proxy = Proxy::Always(ProxyUrl::parse(&refusing.url()).unwrap());
    let f = match AnyClient::connect(host, s).await {
        Err(f) => f,
        Ok(_) => panic!("connected through a refusing proxy"),
    };
    assert_eq!(connect_kind(&f), Some(ConnectFailureKind::Proxy(502)), "{f:?}");
    assert!(!f.permanent, "{f:?}");
    assert_eq!(refusing.next_connect().await.status, 502);
    broker.stop().await;
}

async fn a_broker_requiring_client_certificates_admits_only_a_client_with_one(host: Host) {
    // proves S9: the client certificate and key in the transport config (mTLS)
    let pki = pki();
    let files = broker_files("mtls", host, &pki, true);
    let broker = start_broker(broker_config(membership(1, &[])), Some(TlsSetup::Files(files))).await;
    let url = broker.url();
    let mut s = spec(&url, 1, "s1");
    s.transport.tls.extra_ca_pem.push(pki.ca_pem.clone());
    // Without a certificate the broker ends the handshake.
    match AnyClient::connect(host, s.clone()).await {
        Err(f) => {
            let kind = connect_kind(&f);
            assert!(
                matches!(kind, Some(ConnectFailureKind::Tls | ConnectFailureKind::Network)),
                "{f:?}"
            );
        }
        Ok(_) => panic!("a broker requiring client certificates admitted a client without one"),
    }
    s.transport.tls.client_cert = Some(ClientCert::Pem {
        cert: pki.client.0.clone(),
        key: pki.client.1.clone(),
    });
    let alice = AnyClient::connect(host, s)
        .await
        .unwrap_or_else(|f| panic!("{}", f.text));
    alice
        .send("*", "mutually authenticated", Priority::Next)
        .await
        .unwrap();
    alice.close().await;
    broker.stop().await;
}
