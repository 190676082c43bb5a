//! `wss://` against an in-test TLS broker with a self-signed certificate:
//! trusted through an extra CA it connects, with the default roots it is
//! refused (X5: verification is always on).

mod common;

use std::net::TcpListener;
use std::sync::Arc;

use common::{config, serve, Behaviour};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tether_mio::{BlockingClient, ConnectError, Roots, TlsOptions};
use tether_proto::mesh::wire::Priority;

/// A TLS broker for `localhost`; returns its port and its certificate (PEM).
fn tls_server() -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let server_config = Arc::new(server_config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, tcp) in listener.incoming().enumerate() {
            let Ok(tcp) = tcp else { return };
            let server_config = Arc::clone(&server_config);
            std::thread::spawn(move || {
                let tls = rustls::ServerConnection::new(server_config).unwrap();
                serve(rustls::StreamOwned::new(tls, tcp), Behaviour::Ack, n);
            });
        }
    });
    (port, pem)
}

#[test]
fn wss_with_an_extra_ca_connects_and_sends() {
    let (port, pem) = tls_server();
    let mut c = config(&format!("wss://localhost:{port}/ws"));
    c.transport.tls = TlsOptions {
        roots: Roots::None,
        ..TlsOptions::default()
    }
    .with_extra_ca_pem(pem);
    let client = BlockingClient::connect(c).unwrap();
    let sent = client.send("@alice", "over tls", Priority::Next).unwrap();
    assert_eq!(sent.message_id, "m1");
    client.close();
}

#[test]
fn wss_with_an_untrusted_certificate_is_refused() {
    let (port, _pem) = tls_server();
    let c = config(&format!("wss://localhost:{port}/ws"));
    let err = BlockingClient::connect(c).unwrap_err();
    assert!(matches!(err, ConnectError::Failed(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
}
