//! Which keys a presence answers to, and which key it speaks with.
//!
//! Only what a hello proves is an identity: the member key (the hello's signature) and
//! a `session_hello`'s session key (the parent's attestation and the session's
//! signature). A member `hello` may also name a `sessionPubkey` — the real product's
//! `BrokerClient` does, and encrypts its direct messages with that key — but nothing
//! proves it. tether's broker honours such a claim (routes to it, names it as
//! `senderPubkey` and as the peer's `pubkey`) only while it is uncontested: no other
//! member's presence holds, proves or claims the same key, no member ever said hello
//! with it here, and it is no member's key on the roster. A contested claim is void for every claimant (counted), so claiming
//! someone else's key can at most stop the claim path, never receive their messages.

use super::broker::Broker;
use super::conn::Seat;

impl Broker {
    /// Whether a message addressed to `key` reaches this presence.
    pub(crate) fn answers_to(&self, seat: &Seat, key: &str) -> bool {
        seat.member_pubkey == key
            || seat.session_pubkey.as_deref() == Some(key)
            || (seat.claimed_pubkey.as_deref() == Some(key) && self.claim_holds(seat))
    }

    /// The key the presence is known by: its proven session key, else its uncontested
    /// claimed one, else its member key (PROTOCOL.md: `senderPubkey`, a peer's `pubkey`).
    pub(crate) fn speaking_key<'a>(&self, seat: &'a Seat) -> &'a str {
        if let Some(key) = &seat.session_pubkey {
            return key;
        }
        match &seat.claimed_pubkey {
            Some(key) if self.claim_holds(seat) => key,
            _ => &seat.member_pubkey,
        }
    }

    /// Whether the seat's claimed key is its own: no other member's presence in the
    /// mesh (open or lingering) holds it as a member key, session key or claim, and the
    /// roster gives it to nobody.
    pub(crate) fn claim_holds(&self, seat: &Seat) -> bool {
        let Some(key) = seat.claimed_pubkey.as_deref() else {
            return false;
        };
        if key == seat.member_pubkey {
            return true;
        }
        let on_roster = self
            .config
            .membership
            .roster(&seat.mesh_id)
            .is_some_and(|r| r.by_pubkey(key).is_some());
        if on_roster {
            return false;
        }
        let Some(mesh) = self.meshes.get(&seat.mesh_id) else {
            return true;
        };
        // A key some member said hello with is that member's, even while it is away.
        if mesh.member_keys.iter().any(|k| k == key) {
            return false;
        }
        let open = mesh
            .open
            .iter()
            .filter_map(|id| self.conns.get(id).and_then(|c| c.seat()));
        let lingering = mesh
            .lingering
            .iter()
            .filter_map(|id| self.leases.get(id).map(|l| &l.seat));
        !open.chain(lingering).any(|other| {
            other.member_pubkey != seat.member_pubkey
                && (other.member_pubkey == key
                    || other.session_pubkey.as_deref() == Some(key)
                    || other.claimed_pubkey.as_deref() == Some(key))
        })
    }
}
