//! Why a server could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// A failure to start (or restart) a broker server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TLS configuration could not be loaded.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// A setting of the broker is invalid (a zero or over-long duration).
    #[error("invalid broker configuration: {0}")]
    Config(#[from] tether_proto::lifecycle::ConfigError),
}

/// A TLS certificate or key that could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    /// The key file holds no private key.
    #[error("no private key in {0}")]
    NoPrivateKey(PathBuf),
    /// The client CA file cannot verify client certificates.
    #[error("client CAs: {0}")]
    ClientVerifier(String),
    /// rustls refused the certificate and key.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}
