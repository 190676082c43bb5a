//! Who may join which mesh: anyone with a valid signature, or a listed roster.
//!
//! The roster file is `{"meshes": {"<meshId>": {"members": [{"memberId", "pubkey",
//! "displayName", "revoked", "groups": [{"name", "role"?}]}]}}}`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use tether_proto::mesh::identity::PublicKey;
use tether_proto::mesh::wire::GroupRef;

use super::load_error::{read_file, LoadError};

/// One listed member of a mesh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    /// Member id; a hello must name this id for this key.
    pub member_id: String,
    /// The member's public key, 64 lowercase hex.
    pub pubkey: String,
    /// Name on record, sent back as `memberDisplayName`.
    #[serde(default)]
    pub display_name: String,
    /// A revoked member is refused with `revoked` (close 4002 `banned`).
    #[serde(default)]
    pub revoked: bool,
    /// Groups the member belongs to unless its hello names others.
    #[serde(default)]
    pub groups: Vec<GroupRef>,
}

/// The members of one mesh, indexed by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    members: Vec<MemberRecord>,
    by_pubkey: HashMap<String, usize>,
}

impl Roster {
    /// A roster of these members; keys are compared in lowercase.
    pub fn new(members: Vec<MemberRecord>) -> Self {
        let mut members = members;
        for m in &mut members {
            m.pubkey.make_ascii_lowercase();
        }
        let by_pubkey = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.pubkey.clone(), i))
            .collect();
        Roster { members, by_pubkey }
    }

    /// The member holding this key.
    pub fn by_pubkey(&self, pubkey: &str) -> Option<&MemberRecord> {
        self.by_pubkey.get(pubkey).and_then(|&i| self.members.get(i))
    }

    /// Every member, in file order.
    pub fn members(&self) -> &[MemberRecord] {
        &self.members
    }
}

/// The admission policy of a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Membership {
    /// Any correctly signed key may join any mesh.
    #[default]
    Open,
    /// Only listed, unrevoked members may join, and only their listed meshes.
    Listed(BTreeMap<String, Roster>),
}

/// What the membership says about a key asking to join a mesh.
pub(crate) enum Standing<'a> {
    /// Open membership: no record, admitted.
    Open,
    /// A listed member.
    Member(&'a MemberRecord),
    /// The mesh is not listed.
    UnknownMesh,
    /// The key is not on the mesh's roster.
    NotMember,
}

#[derive(Deserialize)]
struct FileShape {
    meshes: BTreeMap<String, MeshShape>,
}

#[derive(Deserialize)]
struct MeshShape {
    #[serde(default)]
    members: Vec<MemberRecord>,
}

impl Membership {
    /// Parses a roster file's text, checking every key.
    pub fn from_json_str(text: &str) -> Result<Self, LoadError> {
        let file: FileShape = serde_json::from_str(text)?;
        let mut meshes = BTreeMap::new();
        for (mesh_id, mesh) in file.meshes {
            for m in &mesh.members {
                PublicKey::from_hex(&m.pubkey).map_err(|e| LoadError::BadPubkey {
                    mesh_id: mesh_id.clone(),
                    member_id: m.member_id.clone(),
                    detail: e.to_string(),
                })?;
            }
            meshes.insert(mesh_id, Roster::new(mesh.members));
        }
        Ok(Membership::Listed(meshes))
    }

    /// Reads and parses a roster file (see [`Membership::from_json_str`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        Self::from_json_str(&read_file(path.as_ref())?)
    }

    /// The roster of a mesh, when membership is listed.
    pub fn roster(&self, mesh_id: &str) -> Option<&Roster> {
        match self {
            Membership::Open => None,
            Membership::Listed(meshes) => meshes.get(mesh_id),
        }
    }

    pub(crate) fn standing(&self, mesh_id: &str, pubkey: &str) -> Standing<'_> {
        match self {
            Membership::Open => Standing::Open,
            Membership::Listed(meshes) => match meshes.get(mesh_id) {
                None => Standing::UnknownMesh,
                Some(roster) => roster
                    .by_pubkey(&pubkey.to_ascii_lowercase())
                    .map_or(Standing::NotMember, Standing::Member),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";

    #[test]
    fn parses_the_roster_file_shape() {
        let text = format!(
            r#"{{"meshes":{{"m1":{{"members":[{{"memberId":"a","pubkey":"{}","displayName":"Ada",
            "revoked":false,"groups":[{{"name":"ops"}}]}}]}}}}}}"#,
            KEY.to_uppercase()
        );
        let membership = Membership::from_json_str(&text).unwrap();
        let roster = membership.roster("m1").unwrap();
        let ada = roster.by_pubkey(KEY).unwrap();
        assert_eq!(ada.display_name, "Ada");
        assert_eq!(ada.groups[0].name, "ops");
        assert!(matches!(membership.standing("m1", KEY), Standing::Member(_)));
        assert!(matches!(membership.standing("m2", KEY), Standing::UnknownMesh));
    }

    #[test]
    fn refuses_bad_keys_and_bad_json() {
        let text = r#"{"meshes":{"m1":{"members":[{"memberId":"a","pubkey":"zz"}]}}}"#;
        assert!(matches!(
            Membership::from_json_str(text),
            Err(LoadError::BadPubkey { ref member_id, .. }) if member_id == "a"
        ));
        assert!(matches!(Membership::from_json_str("[]"), Err(LoadError::Json(_))));
        assert!(matches!(
            Membership::from_file("/nonexistent/roster.json"),
            Err(LoadError::Read { .. })
        ));
    }
}
