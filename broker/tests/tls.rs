//! `wss://` with a self-signed certificate that the client trusts explicitly (X5).

mod common;

use std::sync::Arc;

use common::*;
use tether_broker::{BrokerConfig, TlsFiles, TlsSetup};
use tether_proto::mesh::wire::BrokerFrame;
use tokio_tungstenite::Connector;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client_trusting(cert: &rcgen::Certificate) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate_from_pem_files() {
    let issued =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!("tether-broker-tls-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let files = TlsFiles {
        cert_pem_path: dir.0.join("cert.pem"),
        key_pem_path: dir.0.join("key.pem"),
        client_ca_pem_path: None,
    };
    std::fs::write(&files.cert_pem_path, issued.cert.pem()).unwrap();
    std::fs::write(&files.key_pem_path, issued.signing_key.serialize_pem()).unwrap();

    let broker = start_tls(BrokerConfig::default(), Some(TlsSetup::Files(files))).await;
    let url = broker.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let connector = Connector::Rustls(client_trusting(&issued.cert));
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, Some(connector))
            .await
            .unwrap();
    send(&mut ws, member(1).hello(&presence("s1"), unix_ms())).await;
    assert!(matches!(next_frame(&mut ws).await, BrokerFrame::HelloAck(_)));

    // A client that trusts only the public roots refuses the self-signed certificate.
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_err());
    broker.stop().await;
}

#[test]
fn missing_pem_files_are_a_tls_error() {
    let files = TlsFiles {
        cert_pem_path: "/nonexistent/cert.pem".into(),
        key_pem_path: "/nonexistent/key.pem".into(),
        client_ca_pem_path: None,
    };
    assert!(TlsSetup::Files(files).load().is_err());
}
