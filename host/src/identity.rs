//! Identity files: the member identity that `tether keygen` writes, and beside it
//! the one logical session that identity keeps across reconnects and restarts
//! (B17).
//!
//! Both are JSON at mode 0600. The identity file is written once and never
//! overwritten; its `pubkey` must be the one its secret derives, so a file edited
//! by hand cannot claim another member's key. The session file
//! (`<identity>.session.json`) holds a `sessionId` and a session key, made on
//! first use and reused from then on: a new id or key per process would leave a
//! ghost peer behind for the real broker's 90 s grace every time.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_proto::mesh::handshake::{Credentials, SessionCredentials, DEFAULT_ATTESTATION_TTL};
use tether_proto::mesh::identity::{KeyError, MemberIdentity, PublicKey, SecretKey};

/// Why an identity or session file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not the expected JSON.
    #[error("{} is not a valid identity file: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key in the file is not valid key material.
    #[error("{} holds a bad key: {source}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why the key was refused.
        source: KeyError,
    },
    /// The file's `pubkey` is not the key its secret derives.
    #[error("{}: pubkey {stated} is not the key of its secret ({derived})", path.display())]
    PubkeyMismatch {
        /// The file.
        path: PathBuf,
        /// What the file says.
        stated: String,
        /// What the secret derives.
        derived: String,
    },
    /// The file exists already; identities are never overwritten.
    #[error("{} exists already; identities are never overwritten", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The OS gave no randomness for a new key.
    #[error("no OS randomness for a new key: {0}")]
    NoRandomness(String),
}

/// The on-disk form of an identity (`tether keygen`'s format).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDisk {
    mesh_id: String,
    member_id: String,
    pubkey: String,
    secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
}

/// A member identity as stored by `tether keygen`, checked when loaded.
#[derive(Clone)]
pub struct IdentityFile {
    /// Mesh id.
    pub mesh_id: String,
    /// Member id.
    pub member_id: String,
    /// Display name to announce, if any.
    pub display_name: Option<String>,
    secret: SecretKey,
}

impl std::fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityFile")
            .field("mesh_id", &self.mesh_id)
            .field("member_id", &self.member_id)
            .field("pubkey", &self.pubkey().to_hex())
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

impl IdentityFile {
    /// An identity around an existing secret.
    pub fn new(mesh_id: &str, member_id: &str, display_name: Option<String>, secret: SecretKey) -> Self {
        IdentityFile {
            mesh_id: mesh_id.into(),
            member_id: member_id.into(),
            display_name,
            secret,
        }
    }

    /// A fresh identity from 32 bytes of OS randomness.
    pub fn generate(
        mesh_id: &str,
        member_id: &str,
        display_name: Option<String>,
    ) -> Result<Self, IdentityError> {
        Ok(Self::new(mesh_id, member_id, display_name, random_key()?))
    }

    /// Reads an identity file, checking its secret and that `pubkey` matches it.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let disk: IdentityDisk = read_json(path)?;
        let secret = SecretKey::from_hex(&disk.secret_key).map_err(|source| IdentityError::BadKey {
            path: path.to_owned(),
            source,
        })?;
        let derived = secret.public_key().to_hex();
        if !disk.pubkey.eq_ignore_ascii_case(&derived) {
            return Err(IdentityError::PubkeyMismatch {
                path: path.to_owned(),
                stated: disk.pubkey,
                derived,
            });
        }
        Ok(IdentityFile {
            mesh_id: disk.mesh_id,
            member_id: disk.member_id,
            display_name: disk.display_name,
            secret,
        })
    }

    /// Writes the file at mode 0600; refuses if `path` exists.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        let disk = IdentityDisk {
            mesh_id: self.mesh_id.clone(),
            member_id: self.member_id.clone(),
            pubkey: self.pubkey().to_hex(),
            secret_key: self.secret.to_hex(),
            display_name: self.display_name.clone(),
        };
        write_new_json(path, &disk)
    }

    /// The member's public key.
    pub fn pubkey(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// The member's secret key (its `Debug` is redacted).
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The identity a client signs its hellos with.
    pub fn member(&self) -> MemberIdentity {
        MemberIdentity {
            mesh_id: self.mesh_id.clone(),
            member_id: self.member_id.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// The on-disk form of a persisted session.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionDisk {
    session_id: String,
    session_pubkey: String,
    session_secret_key: String,
}

/// One logical session of an identity: a `sessionId` and a session key kept
/// across reconnects and process restarts (B17).
#[derive(Clone)]
pub struct SessionFile {
    /// The session id sent in every hello of this session.
    pub session_id: String,
    key: SecretKey,
}

impl std::fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFile")
            .field("session_id", &self.session_id)
            .field("session_pubkey", &self.key.public_key().to_hex())
            .finish_non_exhaustive()
    }
}

impl SessionFile {
    /// Where the session of the identity at `identity` lives: beside it.
    pub fn path_for(identity: &Path) -> PathBuf {
        let mut name = identity.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".session.json");
        identity.with_file_name(name)
    }

    /// Reads `path`, or makes and saves a new session there if there is none.
    /// Two processes starting at once end up with the same session: the one
    /// that loses the race to create the file reads the winner's.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        match Self::load(path) {
            Err(IdentityError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let key = random_key()?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| IdentityError::NoRandomness(e.to_string()))?;
        let fresh = SessionFile {
            session_id: format!("tether-{}", tether_proto::mesh::hex::encode(&id)),
            key,
        };
        match fresh.save_new(path) {
            Ok(()) => Ok(fresh),
            Err(IdentityError::Exists { .. }) => Self::load(path),
            Err(e) => Err(e),
        }
    }

    /// Reads a session file, checking its key.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let disk: SessionDisk = read_json(path)?;
        let key = SecretKey::from_hex(&disk.session_secret_key).map_err(|source| IdentityError::BadKey {
            path: path.to_owned(),
            source,
        })?;
        let derived = key.public_key().to_hex();
        if !disk.session_pubkey.eq_ignore_ascii_case(&derived) {
            return Err(IdentityError::PubkeyMismatch {
                path: path.to_owned(),
                stated: disk.session_pubkey,
                derived,
            });
        }
        if disk.session_id.is_empty() {
            return Err(IdentityError::Invalid {
                path: path.to_owned(),
                message: "empty sessionId".into(),
            });
        }
        Ok(SessionFile {
            session_id: disk.session_id,
            key,
        })
    }

    /// Writes the file at mode 0600; refuses if `path` exists.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        write_new_json(
            path,
            &SessionDisk {
                session_id: self.session_id.clone(),
                session_pubkey: self.key.public_key().to_hex(),
                session_secret_key: self.key.to_hex(),
            },
        )
    }

    /// The session's public key: what peers address it by.
    pub fn pubkey(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Credentials that connect as this session with `session_hello`, vouched
    /// for by `parent` with an attestation minted afresh for every attempt.
    pub fn credentials(&self, parent: MemberIdentity, role: Option<String>) -> Credentials {
        self.credentials_with_ttl(parent, role, DEFAULT_ATTESTATION_TTL)
    }

    /// [`SessionFile::credentials`] with a chosen attestation lifetime.
    pub fn credentials_with_ttl(
        &self,
        parent: MemberIdentity,
        role: Option<String>,
        attestation_ttl: Duration,
    ) -> Credentials {
        Credentials::Session(Box::new(SessionCredentials {
            parent,
            session_key: self.key.clone(),
            role,
            attestation_ttl,
        }))
    }
}

fn random_key() -> Result<SecretKey, IdentityError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| IdentityError::NoRandomness(e.to_string()))?;
    Ok(SecretKey::from_seed(seed))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, IdentityError> {
    let text = fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| IdentityError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn write_new_json<T: Serialize>(path: &Path, value: &T) -> Result<(), IdentityError> {
    let write_err = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_string_pretty(value).map_err(|e| write_err(io::Error::other(e)))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            IdentityError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_err(source)
        }
    })?;
    f.write_all(json.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of one test's own, removed when the test ends however it ends.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("tether-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    #[test]
    fn an_identity_round_trips_at_mode_0600_and_is_never_overwritten() {
        let d = dir("roundtrip");
        let path = d.join("me.json");
        let id = IdentityFile::new(
            "mesh-1",
            "member-1",
            Some("Ada".into()),
            SecretKey::from_seed([1; 32]),
        );
        id.save_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let back = IdentityFile::load(&path).unwrap();
        assert_eq!(back.pubkey(), id.pubkey());
        assert_eq!(back.display_name.as_deref(), Some("Ada"));
        let other = IdentityFile::new("mesh-1", "member-2", None, SecretKey::from_seed([2; 32]));
        assert!(matches!(other.save_new(&path), Err(IdentityError::Exists { .. })));
        assert_eq!(
            IdentityFile::load(&path).unwrap().pubkey(),
            id.pubkey(),
            "unchanged"
        );
    }

    #[test]
    fn a_pubkey_that_is_not_the_secrets_is_refused() {
        let d = dir("mismatch");
        let path = d.join("me.json");
        IdentityFile::new("m", "a", None, SecretKey::from_seed([1; 32]))
            .save_new(&path)
            .unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        json["pubkey"] = serde_json::json!(SecretKey::from_seed([2; 32]).public_key().to_hex());
        let forged = json.to_string();
        let forged_path = d.join("forged.json");
        fs::write(&forged_path, forged).unwrap();
        assert!(matches!(
            IdentityFile::load(&forged_path),
            Err(IdentityError::PubkeyMismatch { .. })
        ));
        fs::write(&forged_path, "{").unwrap();
        assert!(matches!(
            IdentityFile::load(&forged_path),
            Err(IdentityError::Invalid { .. })
        ));
    }

    // proves B17: the session is made once and the same one comes back.
    #[test]
    fn the_session_beside_an_identity_is_made_once_and_kept() {
        let d = dir("session");
        let path = SessionFile::path_for(&d.join("me.json"));
        assert_eq!(path, d.join("me.json.session.json"));
        let first = SessionFile::load_or_create(&path).unwrap();
        let again = SessionFile::load_or_create(&path).unwrap();
        assert_eq!(first.session_id, again.session_id);
        assert_eq!(first.pubkey(), again.pubkey());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let member = IdentityFile::new("m", "a", None, SecretKey::from_seed([1; 32])).member();
        match first.credentials(member, None) {
            Credentials::Session(s) => assert_eq!(s.session_key.public_key(), first.pubkey()),
            Credentials::Member(_) => panic!("session credentials expected"),
        }
    }
}
