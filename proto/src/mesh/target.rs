//! Who a message goes to (B15).
//!
//! On the wire a `targetSpec` is a 64-hex pubkey, `@group`, `#topicId` or `*`; the
//! real broker reads anything else as a pubkey and refuses it. People write display
//! names, so a [`Target::Name`] is resolved to a pubkey through `list_peers` before
//! anything is sent (the session does it), and a name that matches no peer or
//! several is a clear failure whose outcome is "never sent".

use std::fmt;

use super::identity::PublicKey;
use super::wire::{Peer, PeerRole};

/// A message's addressee, parsed from what a user typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One peer by its key (session or member key): end-to-end encrypted (B14).
    /// Boxed: a decoded key is 192 bytes, and every queued send holds a target.
    Pubkey(Box<PublicKey>),
    /// One peer by display name, resolved to its pubkey before sending.
    Name(String),
    /// Every member of a group (`@name`; `@all` is everyone).
    Group(String),
    /// Everyone in the mesh (`*`).
    All,
    /// A topic by id (`#id`).
    Topic(String),
}

impl Target {
    /// Reads a target as users write it: `*`, `@group`, `#topic`, 64 hex
    /// characters (either case) for a key, anything else a display name.
    pub fn parse(text: &str) -> Target {
        if text == "*" {
            return Target::All;
        }
        if let Some(group) = text.strip_prefix('@') {
            return Target::Group(group.to_owned());
        }
        if let Some(topic) = text.strip_prefix('#') {
            return Target::Topic(topic.to_owned());
        }
        if text.len() == 64 {
            if let Ok(key) = PublicKey::from_hex(text) {
                return Target::Pubkey(Box::new(key));
            }
        }
        Target::Name(text.to_owned())
    }

    /// Whether the body is end-to-end encrypted: only direct messages are (B14).
    pub fn is_direct(&self) -> bool {
        matches!(self, Target::Pubkey(_))
    }

    /// Whether there is nothing to address (an empty name, group or topic).
    pub fn is_empty(&self) -> bool {
        match self {
            Target::Name(s) | Target::Group(s) | Target::Topic(s) => s.is_empty(),
            Target::Pubkey(_) | Target::All => false,
        }
    }

    /// The wire `targetSpec`, or `None` for a name, which is never put on the wire.
    pub fn wire_spec(&self) -> Option<String> {
        match self {
            Target::Pubkey(key) => Some(key.to_hex()),
            Target::Name(_) => None,
            Target::Group(g) => Some(format!("@{g}")),
            Target::All => Some("*".to_owned()),
            Target::Topic(t) => Some(format!("#{t}")),
        }
    }
}

impl From<&str> for Target {
    fn from(text: &str) -> Self {
        Target::parse(text)
    }
}

impl From<String> for Target {
    fn from(text: String) -> Self {
        Target::parse(&text)
    }
}

impl From<&String> for Target {
    fn from(text: &String) -> Self {
        Target::parse(text)
    }
}

impl From<PublicKey> for Target {
    fn from(key: PublicKey) -> Self {
        Target::Pubkey(Box::new(key))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(n) => f.write_str(n),
            other => f.write_str(&other.wire_spec().unwrap_or_default()),
        }
    }
}

/// Why a display name could not be turned into one key (B15).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No listed peer has that display name.
    #[error("no peer is named {name:?} (online: {})", list_or_none(.online))]
    NoMatch {
        /// The name asked for.
        name: String,
        /// Display names of the peers that were listed, for the error text.
        online: Vec<String>,
    },
    /// Several peers (different keys) have that display name.
    #[error("the name {name:?} matches {} peers: {}; use a pubkey", .candidates.len(), list_or_none(.candidates))]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// `displayName pubkey` of each match.
        candidates: Vec<String>,
    },
    /// The one match carries a key that is not a valid ed25519 key (a broker's fault).
    #[error("the peer named {name:?} has an invalid key")]
    BadKey {
        /// The name asked for.
        name: String,
    },
}

impl ResolveError {
    /// A short machine-readable name for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::NoMatch { .. } => "name_not_found",
            ResolveError::Ambiguous { .. } => "name_ambiguous",
            ResolveError::BadKey { .. } => "name_bad_key",
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// Finds the one peer called `name` (case-insensitive, as the real CLI compares)
/// among `peers`, never a control-plane row: daemons are infrastructure, and a
/// direct message to one is swallowed (`apps/cli/src/commands/send.ts`). Rows
/// with the same key (one peer listed twice) count once.
pub fn resolve_name(name: &str, peers: &[Peer]) -> Result<PublicKey, ResolveError> {
    let wanted = name.to_lowercase();
    let mut hits: Vec<&Peer> = Vec::new();
    for peer in peers {
        if peer.role() == PeerRole::ControlPlane || peer.display_name.to_lowercase() != wanted {
            continue;
        }
        if !hits.iter().any(|h| h.pubkey.eq_ignore_ascii_case(&peer.pubkey)) {
            hits.push(peer);
        }
    }
    match hits.as_slice() {
        [] => Err(ResolveError::NoMatch {
            name: name.to_owned(),
            online: peers
                .iter()
                .filter(|p| p.role() != PeerRole::ControlPlane)
                .map(|p| p.display_name.clone())
                .collect(),
        }),
        [one] => PublicKey::from_hex(&one.pubkey).map_err(|_| ResolveError::BadKey {
            name: name.to_owned(),
        }),
        many => Err(ResolveError::Ambiguous {
            name: name.to_owned(),
            candidates: many
                .iter()
                .map(|p| format!("{} {}", p.display_name, short(&p.pubkey)))
                .collect(),
        }),
    }
}

fn short(key: &str) -> String {
    let end = key.char_indices().nth(16).map_or(key.len(), |(i, _)| i);
    format!("{}…", &key[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::identity::SecretKey;

    fn peer(name: &str, seed: u8, role: Option<&str>) -> Peer {
        Peer {
            pubkey: SecretKey::from_seed([seed; 32]).public_key().to_hex(),
            display_name: name.into(),
            peer_role: role.map(Into::into),
            ..Peer::default()
        }
    }

    #[test]
    fn parse_reads_every_form() {
        let key = SecretKey::from_seed([1; 32]).public_key();
        assert_eq!(Target::parse(&key.to_hex()), Target::from(key));
        assert_eq!(Target::parse(&key.to_hex().to_uppercase()), Target::from(key));
        assert_eq!(Target::parse("*"), Target::All);
        assert_eq!(Target::parse("@all"), Target::Group("all".into()));
        assert_eq!(Target::parse("#t1"), Target::Topic("t1".into()));
        assert_eq!(Target::parse("bob"), Target::Name("bob".into()));
        // Hex of another length is not a key.
        assert!(matches!(Target::parse(&"a".repeat(63)), Target::Name(_)));
        assert_eq!(Target::from(key).wire_spec(), Some(key.to_hex()));
        assert_eq!(Target::Name("bob".into()).wire_spec(), None);
        assert!(Target::parse("").is_empty());
    }

    // proves B15: one match resolves, case-insensitively, skipping control-plane rows.
    #[test]
    fn a_name_resolves_to_the_one_session_peer_with_it() {
        let peers = [
            peer("Bob", 2, Some("control-plane")),
            peer("bob", 3, Some("session")),
            peer("carol", 4, None),
        ];
        assert_eq!(
            resolve_name("BOB", &peers),
            Ok(SecretKey::from_seed([3; 32]).public_key())
        );
    }

    // proves B15: no match and several matches are errors that say why.
    #[test]
    fn no_match_and_several_matches_are_clear_errors() {
        let peers = [peer("bob", 2, None), peer("bob", 3, None), peer("carol", 4, None)];
        let err = resolve_name("dave", &peers).unwrap_err();
        assert!(matches!(err, ResolveError::NoMatch { .. }));
        assert_eq!(
            err.to_string(),
            "no peer is named \"dave\" (online: bob, bob, carol)"
        );
        let err = resolve_name("bob", &peers).unwrap_err();
        assert!(matches!(&err, ResolveError::Ambiguous { candidates, .. } if candidates.len() == 2));
        assert!(err.to_string().contains("matches 2 peers"), "{err}");
        // The same peer listed twice is one match.
        let twice = [peer("bob", 2, None), peer("bob", 2, None)];
        assert!(resolve_name("bob", &twice).is_ok());
    }
}
