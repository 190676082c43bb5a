//! Why a membership or skills file could not be loaded.

use std::path::PathBuf;

use thiserror::Error;

/// A configuration file that could not be read or understood.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The text is not the expected JSON shape.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A member's `pubkey` is not 64 hex characters of a valid ed25519 key.
    #[error("mesh {mesh_id}: member {member_id} has a bad pubkey: {detail}")]
    BadPubkey {
        /// Mesh of the member.
        mesh_id: String,
        /// The member.
        member_id: String,
        /// What is wrong with the key.
        detail: String,
    },
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}
