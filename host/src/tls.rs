//! TLS for `wss://`: certificate verification is on by default (X5); the
//! knobs are which roots to trust and, for brokers that require one, the
//! client certificate to present (S9, mTLS). Both hosts take these same options.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Which certificate authorities a `wss://` connection trusts.
// Eq + Hash so a reactor builds one rustls configuration per distinct set of
// options and shares it: a root store per connection would cost more than the
// connection itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// The base set of roots.
    pub roots: Roots,
    /// Extra CA certificates (PEM files), e.g. for a broker with a self-signed
    /// certificate. They are added to the base roots, never replace verification.
    pub extra_ca_files: Vec<PathBuf>,
    /// Extra CA certificates already in memory (PEM text).
    pub extra_ca_pem: Vec<String>,
    /// The certificate and key presented to a server that asks for one (S9).
    pub client_cert: Option<ClientCert>,
}

/// A client certificate chain and its private key, for mTLS (S9).
///
/// The key is a secret: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ClientCert {
    /// PEM files: the chain (leaf first) and the key (PKCS#8, PKCS#1 or SEC1).
    Files {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// The same, already in memory as PEM text.
    Pem {
        /// The certificate chain.
        cert: String,
        /// The private key.
        key: String,
    },
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCert::Files { cert, key } => f
                .debug_struct("ClientCert::Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            ClientCert::Pem { cert, .. } => f
                .debug_struct("ClientCert::Pem")
                .field("cert_bytes", &cert.len())
                .field("key", &"***")
                .finish(),
        }
    }
}

/// The base set of trusted roots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Roots {
    /// Mozilla's roots compiled in (webpki-roots): the same everywhere.
    #[default]
    Webpki,
    /// The platform's certificate store.
    Platform,
    /// No base roots: only the extra CAs are trusted.
    None,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA, client certificate or key file could not be read.
    #[error("cannot read TLS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A CA file or PEM text holds no usable certificate.
    #[error("no certificate in {0}")]
    NoCertificate(String),
    /// The client certificate's key file or text holds no private key.
    #[error("no private key in {0}")]
    NoPrivateKey(String),
    /// rustls refused the client certificate and key (a key that does not
    /// match, an unsupported key type).
    #[error("bad client certificate {what}: {reason}")]
    BadClientCert {
        /// Where it came from.
        what: String,
        /// Why rustls refused it.
        reason: String,
    },
    /// A certificate was rejected by the root store.
    #[error("bad CA certificate in {what}: {reason}")]
    BadCertificate {
        /// Where it came from.
        what: String,
        /// Why rustls refused it.
        reason: String,
    },
}

impl TlsOptions {
    /// Trusts `pem` in addition to the default roots.
    pub fn with_extra_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_ca_pem.push(pem.into());
        self
    }

    /// Presents `cert` and `key` (PEM) to servers that ask for a client certificate.
    pub fn with_client_cert_pem(mut self, cert: impl Into<String>, key: impl Into<String>) -> Self {
        self.client_cert = Some(ClientCert::Pem {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Builds the rustls client configuration.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = RootCertStore::empty();
        match self.roots {
            Roots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::Platform => {
                // Unreadable platform certificates are skipped, as browsers do.
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
            }
            Roots::None => {}
        }
        for path in &self.extra_ca_files {
            let pem = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })?;
            add_pem(&mut roots, &pem, &path.display().to_string())?;
        }
        for (i, pem) in self.extra_ca_pem.iter().enumerate() {
            add_pem(&mut roots, pem, &format!("extra CA #{i}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::BadCertificate {
                what: "protocol versions".into(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        let config = match &self.client_cert {
            None => config.with_no_client_auth(),
            Some(client) => {
                let (chain, key, what) = client.load()?;
                config
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::BadClientCert {
                        what,
                        reason: e.to_string(),
                    })?
            }
        };
        Ok(Arc::new(config))
    }
}

impl ClientCert {
    /// The chain, the key, and a name for messages (never the key itself).
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String), TlsError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })
        };
        let (cert_pem, key_pem, cert_what, key_what) = match self {
            ClientCert::Files { cert, key } => (
                read(cert)?,
                read(key)?,
                cert.display().to_string(),
                key.display().to_string(),
            ),
            ClientCert::Pem { cert, key } => (
                cert.clone(),
                key.clone(),
                "client certificate PEM".to_owned(),
                "client key PEM".to_owned(),
            ),
        };
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadClientCert {
                what: cert_what.clone(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert_what));
        }
        // The parser's error could quote the key's text: it is not passed on.
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or(TlsError::NoPrivateKey(key_what))?;
        Ok((chain, key, cert_what))
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &str, what: &str) -> Result<(), TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            what: what.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.into()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            what: what.into(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
