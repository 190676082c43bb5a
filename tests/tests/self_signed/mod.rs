//! A broker certificate for 127.0.0.1 that no root store trusts: the scenarios
//! that check `wss:` is TLS and is verified (X5) serve it.

use std::sync::Arc;

use tether_broker::TlsSetup;

/// A freshly issued self-signed certificate for 127.0.0.1 as the broker's TLS,
/// and the certificate's PEM: the CA a client must be given to trust it.
pub fn self_signed_broker_tls() -> (TlsSetup, String) {
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert.der().clone()], key)
        .unwrap();
    (TlsSetup::Config(Arc::new(server)), issued.cert.pem())
}
