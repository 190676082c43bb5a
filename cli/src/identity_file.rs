//! The member identity file written by `tether keygen` and read by the client
//! commands: JSON with the 128-hex secret, kept at mode 0600.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tether_proto::mesh::identity::{MemberIdentity, SecretKey};

use crate::fail::Failure;

/// On-disk form of an identity.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityFile {
    /// Mesh id.
    pub mesh_id: String,
    /// Member id.
    pub member_id: String,
    /// Public key, 64 hex.
    pub pubkey: String,
    /// Secret key, 128 hex (seed then public key).
    pub secret_key: String,
    /// Display name to announce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl std::fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityFile")
            .field("mesh_id", &self.mesh_id)
            .field("member_id", &self.member_id)
            .field("pubkey", &self.pubkey)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl IdentityFile {
    /// A fresh identity from 32 bytes of OS randomness.
    pub fn generate(mesh_id: &str, member_id: &str, display_name: Option<String>) -> Result<Self, Failure> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Failure::local(format!("no OS randomness: {e}"), "retry"))?;
        let secret = SecretKey::from_seed(seed);
        Ok(IdentityFile {
            mesh_id: mesh_id.into(),
            member_id: member_id.into(),
            pubkey: secret.public_key().to_hex(),
            secret_key: secret.to_hex(),
            display_name,
        })
    }

    /// Reads and checks an identity file.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        let text = fs::read_to_string(path).map_err(|e| {
            Failure::usage(
                format!("cannot read identity file {}: {e}", path.display()),
                "create one with `tether keygen --out FILE`",
            )
        })?;
        let file: IdentityFile = serde_json::from_str(&text).map_err(|e| {
            Failure::usage(
                format!("identity file {} is not valid: {e}", path.display()),
                "regenerate it with `tether keygen`",
            )
        })?;
        file.member()?;
        Ok(file)
    }

    /// The identity the client signs with.
    pub fn member(&self) -> Result<MemberIdentity, Failure> {
        let secret = SecretKey::from_hex(&self.secret_key).map_err(|e| {
            Failure::usage(
                format!("bad secret key in identity file: {e}"),
                "regenerate it with `tether keygen`",
            )
        })?;
        Ok(MemberIdentity {
            mesh_id: self.mesh_id.clone(),
            member_id: self.member_id.clone(),
            secret,
        })
    }

    /// Writes the file with 0600 permissions, refusing to overwrite.
    pub fn write_new(&self, path: &Path) -> Result<(), Failure> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| Failure::local(e.to_string(), "report a bug"))?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(path).map_err(|e| {
            Failure::usage(
                format!("cannot create {}: {e}", path.display()),
                "choose another path or remove the file",
            )
        })?;
        f.write_all(json.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .map_err(|e| Failure::local(format!("cannot write {}: {e}", path.display()), "check the disk"))
    }
}
