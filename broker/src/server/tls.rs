//! `wss://`: a rustls server configuration from PEM files or supplied ready-made,
//! optionally requiring client certificates (mTLS) issued by given CAs.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::TlsError;

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert_pem_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem_path: PathBuf,
    /// PEM file of CA certificates: when set, every client must present a
    /// certificate issued by one of them, or the TLS handshake fails (mTLS,
    /// as a hosted deployment behind a client-certificate gateway does).
    pub client_ca_pem_path: Option<PathBuf>,
}

/// How the server gets its TLS configuration.
#[derive(Debug, Clone)]
pub enum TlsSetup {
    /// Load a certificate and key from PEM files.
    Files(TlsFiles),
    /// Use an already built rustls configuration.
    Config(Arc<rustls::ServerConfig>),
}

impl TlsSetup {
    /// The rustls configuration, loading the files if needed.
    pub fn load(self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        match self {
            TlsSetup::Config(config) => Ok(config),
            TlsSetup::Files(files) => load_files(&files),
        }
    }
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn load_files(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Read { path, source }
    };
    let certs = rustls_pemfile::certs(&mut open(&files.cert_pem_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(&files.cert_pem_path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert_pem_path.clone()));
    }
    let key = rustls_pemfile::private_key(&mut open(&files.key_pem_path)?)
        .map_err(read_error(&files.key_pem_path))?
        .ok_or_else(|| TlsError::NoPrivateKey(files.key_pem_path.clone()))?;
    // An explicit provider: the process may have none installed, or more than one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca_pem_path {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in rustls_pemfile::certs(&mut open(path)?) {
                roots.add(ca.map_err(read_error(path))?)?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(path.clone()));
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}
