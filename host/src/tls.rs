//! TLS for `wss://`: certificate verification is on by default (X5); the only
//! knobs are which roots to trust. Both hosts take these same options.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
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
    /// A CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A CA file or PEM text holds no usable certificate.
    #[error("no certificate in {0}")]
    NoCertificate(String),
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
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
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
