//! ed25519 identities and the signed hellos of `PROTOCOL.md` (B12).
//!
//! A client holds a [`MemberIdentity`] and builds a fresh [`HelloFrame`] or
//! [`SessionHelloFrame`] for every connection attempt from the unix time it is
//! given: a stored hello or attestation goes stale and then every reconnect fails
//! (D8). A broker checks what it receives with [`verify_hello`] and
//! [`verify_session_hello`], whose errors carry the rejection code to send back.
//! Randomness and time are always arguments: this module has neither.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use super::hex::{self, HexError};
use super::wire::{HelloExtras, HelloFrame, ParentAttestation, SessionHelloFrame};

/// Brokers reject a hello whose timestamp is further than this from their clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;

/// Brokers reject a session attestation that expires further ahead than this (24 h).
pub const MAX_ATTESTATION_TTL_MS: u64 = 24 * 60 * 60 * 1000;

const ATTEST_PREFIX: &str = "claudemesh-session-attest|";
const SESSION_HELLO_PREFIX: &str = "claudemesh-session-hello|";

/// Why key material could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Not hex, or not the right number of hex characters.
    #[error("bad key hex: {0}")]
    BadHex(#[from] HexError),
    /// The public half of a 64-byte secret key is not the one its seed derives.
    #[error("the secret key's public half does not match its seed")]
    PublicHalfMismatch,
    /// 32 bytes that are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    InvalidPublicKey,
}

/// An ed25519 public key, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode_array::<32>(text)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    /// Checks 32 raw bytes as an ed25519 public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    /// The 64 lowercase hex characters used on the wire.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Checks a 128-hex detached signature over `message` with libsodium's strictness
    /// (small-order keys and non-canonical signatures fail).
    fn verify_hex(&self, message: &str, signature_hex: &str) -> Result<(), SignatureCheck> {
        let bytes = hex::decode_array::<64>(signature_hex).map_err(|_| SignatureCheck::Malformed)?;
        self.0
            .verify_strict(message.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureCheck::Invalid)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// An ed25519 secret key (seed plus public key, libsodium's 64-byte layout).
///
/// It has no `Display` and its `Debug` shows only the public key, so it cannot leak
/// into logs by accident (X5); [`SecretKey::to_hex`] is the one explicit way out.
///
/// Kept as the 64 bytes themselves, not as a dalek `SigningKey` (224 bytes: it
/// carries the decompressed public point too). Every connection holds one or
/// two of these for its whole life, and they sign once per attempt: deriving
/// the signing key then costs one base-point multiplication per hello, which
/// is nothing beside the connect (memory per idle connection counts). The
/// seed is wiped on drop, as dalek's own key is.
#[derive(Clone)]
pub struct SecretKey {
    seed: [u8; 32],
    public: [u8; 32],
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

impl SecretKey {
    /// Derives the key pair from a 32-byte seed; the caller supplies the randomness.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        Self { seed, public }
    }

    /// The dalek signing key, derived for one use and wiped when dropped.
    fn signing(&self) -> SigningKey {
        SigningKey::from_bytes(&self.seed)
    }

    /// Parses the 128-hex config form, checking that the public half matches the seed.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode_array::<64>(text)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let key = Self::from_seed(seed);
        if key.public[..] != bytes[32..] {
            return Err(KeyError::PublicHalfMismatch);
        }
        Ok(key)
    }

    /// The 128-hex config form (seed then public key). This is the secret: handle with care.
    pub fn to_hex(&self) -> String {
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&self.seed);
        pair[32..].copy_from_slice(&self.public);
        let text = hex::encode(&pair);
        zeroize::Zeroize::zeroize(&mut pair);
        text
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        // The bytes were derived from the seed, so they decompress; deriving
        // again is the fallback that cannot fail.
        VerifyingKey::from_bytes(&self.public)
            .map_or_else(|_| PublicKey(self.signing().verifying_key()), PublicKey)
    }

    /// The matching public key's 32 bytes, without decompressing the point:
    /// what the direct-message key cache is keyed by, on every push.
    pub fn public_bytes(&self) -> &[u8; 32] {
        &self.public
    }

    /// The matching public key in its 64 lowercase hex characters.
    pub fn public_hex(&self) -> String {
        hex::encode(&self.public)
    }

    /// The dalek key, for the X25519 conversion of direct-message crypto.
    pub(crate) fn signing_key(&self) -> SigningKey {
        self.signing()
    }

    /// Signs the UTF-8 bytes of `message`; returns the 128 lowercase hex signature.
    pub fn sign_hex(&self, message: &str) -> String {
        hex::encode(&self.signing().sign(message.as_bytes()).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, pubkey={})", self.public_hex())
    }
}

/// The string a member signs in `hello`: `meshId|memberId|pubkey|timestamp`.
pub fn canonical_hello(mesh_id: &str, member_id: &str, pubkey_hex: &str, timestamp_ms: u64) -> String {
    format!("{mesh_id}|{member_id}|{pubkey_hex}|{timestamp_ms}")
}

/// Signs the canonical hello with `key` (whose public key is the `pubkey` field).
pub fn sign_hello(key: &SecretKey, mesh_id: &str, member_id: &str, timestamp_ms: u64) -> String {
    let pubkey = key.public_hex();
    key.sign_hex(&canonical_hello(mesh_id, member_id, &pubkey, timestamp_ms))
}

/// The string a parent signs to vouch for a session key until `expires_at_ms`.
pub fn canonical_session_attestation(
    parent_pubkey_hex: &str,
    session_pubkey_hex: &str,
    expires_at_ms: u64,
) -> String {
    format!("{ATTEST_PREFIX}{parent_pubkey_hex}|{session_pubkey_hex}|{expires_at_ms}")
}

/// The string a session key signs in `session_hello`.
pub fn canonical_session_hello(
    mesh_id: &str,
    parent_pubkey_hex: &str,
    session_pubkey_hex: &str,
    timestamp_ms: u64,
) -> String {
    format!("{SESSION_HELLO_PREFIX}{mesh_id}|{parent_pubkey_hex}|{session_pubkey_hex}|{timestamp_ms}")
}

/// Mints a parent attestation for `session`, valid until `expires_at_ms`.
pub fn mint_attestation(parent: &SecretKey, session: &PublicKey, expires_at_ms: u64) -> ParentAttestation {
    let parent_member_pubkey = parent.public_hex();
    let session_pubkey = session.to_hex();
    let signature = parent.sign_hex(&canonical_session_attestation(
        &parent_member_pubkey,
        &session_pubkey,
        expires_at_ms,
    ));
    ParentAttestation {
        session_pubkey,
        parent_member_pubkey,
        expires_at: expires_at_ms,
        signature,
    }
}

/// The presence fields of a hello that are not part of the signature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presence {
    /// Client-chosen session id, stable across reconnects of one session.
    pub session_id: String,
    /// Process id of the client.
    pub pid: u32,
    /// Working directory of the client.
    pub cwd: String,
    /// Optional presence fields (display name, groups, …); read and set them
    /// as fields of a [`HelloExtras`] (`presence.extras.display_name = …`).
    pub extras: Extras,
}

/// A presence's optional hello fields, held in a box only once one is set.
///
/// Most connections set none, and [`HelloExtras`] is 176 bytes of `None`s
/// that every connection's handshake would otherwise carry for its whole life
/// (memory per idle connection counts). Reading goes through `Deref` (the
/// empty set when nothing was set); `DerefMut` makes the box on first use;
/// `HelloExtras::into()` builds one.
#[derive(Clone, Default)]
pub struct Extras(Option<Box<HelloExtras>>);

/// What an unset [`Extras`] reads as.
static NO_EXTRAS: HelloExtras = HelloExtras {
    protocol_version: None,
    capabilities: None,
    display_name: None,
    hostname: None,
    peer_type: None,
    channel: None,
    model: None,
    groups: None,
};

impl Extras {
    /// The fields, owned.
    pub fn into_inner(self) -> HelloExtras {
        self.0.map(|boxed| *boxed).unwrap_or_default()
    }
}

impl std::ops::Deref for Extras {
    type Target = HelloExtras;

    fn deref(&self) -> &HelloExtras {
        self.0.as_deref().unwrap_or(&NO_EXTRAS)
    }
}

impl std::ops::DerefMut for Extras {
    fn deref_mut(&mut self) -> &mut HelloExtras {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<HelloExtras> for Extras {
    fn from(extras: HelloExtras) -> Self {
        if extras == NO_EXTRAS {
            Extras(None)
        } else {
            Extras(Some(Box::new(extras)))
        }
    }
}

impl PartialEq for Extras {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A mesh member: which mesh, which member, and the member's long-lived key.
#[derive(Debug, Clone)]
pub struct MemberIdentity {
    /// Mesh id.
    pub mesh_id: String,
    /// Member id within the mesh.
    pub member_id: String,
    /// The member's secret key (its `Debug` is redacted).
    pub secret: SecretKey,
}

impl MemberIdentity {
    /// A signed `hello` for one connection attempt at `timestamp_ms` (unix ms) (B12).
    ///
    /// `session_pubkey` is left `None`; it is not signed, so a caller may set it.
    pub fn hello(&self, presence: &Presence, timestamp_ms: u64) -> HelloFrame {
        HelloFrame {
            mesh_id: self.mesh_id.clone(),
            member_id: self.member_id.clone(),
            pubkey: self.secret.public_hex(),
            session_id: presence.session_id.clone(),
            pid: presence.pid,
            cwd: presence.cwd.clone(),
            timestamp: timestamp_ms,
            signature: sign_hello(&self.secret, &self.mesh_id, &self.member_id, timestamp_ms),
            extras: HelloExtras::clone(&presence.extras),
            session_pubkey: None,
        }
    }

    /// A signed `session_hello` for `session_key`, with an attestation re-minted to
    /// expire at `timestamp_ms + attestation_ttl_ms` (B12, D8).
    ///
    /// `role` is left `None`; it is not signed, so a caller may set it.
    pub fn session_hello(
        &self,
        session_key: &SecretKey,
        presence: &Presence,
        timestamp_ms: u64,
        attestation_ttl_ms: u64,
    ) -> SessionHelloFrame {
        let session_pubkey = session_key.public_key();
        let attestation = mint_attestation(
            &self.secret,
            &session_pubkey,
            timestamp_ms.saturating_add(attestation_ttl_ms),
        );
        let session_pubkey = session_pubkey.to_hex();
        let parent_pubkey = self.secret.public_hex();
        let signature = session_key.sign_hex(&canonical_session_hello(
            &self.mesh_id,
            &parent_pubkey,
            &session_pubkey,
            timestamp_ms,
        ));
        SessionHelloFrame {
            mesh_id: self.mesh_id.clone(),
            parent_member_id: self.member_id.clone(),
            parent_member_pubkey: parent_pubkey,
            session_pubkey,
            parent_attestation: attestation,
            session_id: presence.session_id.clone(),
            pid: presence.pid,
            cwd: presence.cwd.clone(),
            timestamp: timestamp_ms,
            signature,
            extras: HelloExtras::clone(&presence.extras),
            role: None,
        }
    }
}

/// Why a broker refuses a hello; [`VerifyError::code`] is the `error` code to send.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The hello's timestamp is more than [`MAX_CLOCK_SKEW_MS`] from the broker's clock.
    #[error("hello timestamp is {skew_ms} ms away from the broker clock")]
    TimestampSkew {
        /// Hello timestamp minus broker time: positive when the client is ahead.
        skew_ms: i64,
    },
    /// A field has bad hex or the wrong length; names the field.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The hello's signature does not verify.
    #[error("hello signature does not verify")]
    BadSignature,
    /// The parent attestation's signature does not verify.
    #[error("parent attestation signature does not verify")]
    BadAttestationSignature,
    /// `sessionPubkey` is not a valid public key.
    #[error("session public key is not a valid ed25519 key")]
    BadSessionPubkey,
    /// `parentMemberPubkey` is not a valid public key.
    #[error("parent public key is not a valid ed25519 key")]
    BadParentPubkey,
    /// The attestation vouches for other keys than the hello names.
    #[error("attestation keys differ from the hello's keys")]
    AttestationMismatch,
    /// The attestation has expired or expires more than 24 h ahead.
    #[error("attestation expired or expires too far ahead")]
    Expired,
}

impl VerifyError {
    /// The PROTOCOL.md rejection code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TimestampSkew { .. } => "timestamp_skew",
            Self::Malformed(_) => "malformed",
            Self::BadSignature | Self::BadAttestationSignature => "bad_signature",
            Self::BadSessionPubkey => "bad_session_pubkey",
            Self::BadParentPubkey => "bad_parent_pubkey",
            Self::AttestationMismatch => "attestation_mismatch",
            Self::Expired => "expired",
        }
    }
}

/// Outcome of checking one signature, before it is named for the caller.
enum SignatureCheck {
    Malformed,
    Invalid,
}

/// Checks a member `hello` against the broker's unix time `now_ms` (B12).
///
/// Does not check that the key belongs to the member: that needs the broker's records.
pub fn verify_hello(hello: &HelloFrame, now_ms: u64) -> Result<(), VerifyError> {
    check_skew(hello.timestamp, now_ms)?;
    let pubkey = PublicKey::from_hex(&hello.pubkey).map_err(|_| VerifyError::Malformed("pubkey"))?;
    let canonical = canonical_hello(&hello.mesh_id, &hello.member_id, &hello.pubkey, hello.timestamp);
    pubkey
        .verify_hex(&canonical, &hello.signature)
        .map_err(|check| match check {
            SignatureCheck::Malformed => VerifyError::Malformed("signature"),
            SignatureCheck::Invalid => VerifyError::BadSignature,
        })
}

/// Checks a `session_hello` and its parent attestation against `now_ms` (B12).
pub fn verify_session_hello(hello: &SessionHelloFrame, now_ms: u64) -> Result<(), VerifyError> {
    check_skew(hello.timestamp, now_ms)?;
    let session = PublicKey::from_hex(&hello.session_pubkey).map_err(|_| VerifyError::BadSessionPubkey)?;
    let parent =
        PublicKey::from_hex(&hello.parent_member_pubkey).map_err(|_| VerifyError::BadParentPubkey)?;

    let attestation = &hello.parent_attestation;
    // Compared as strings because the strings, not the decoded bytes, are what was signed.
    if attestation.session_pubkey != hello.session_pubkey
        || attestation.parent_member_pubkey != hello.parent_member_pubkey
    {
        return Err(VerifyError::AttestationMismatch);
    }
    if attestation.expires_at < now_ms || attestation.expires_at - now_ms > MAX_ATTESTATION_TTL_MS {
        return Err(VerifyError::Expired);
    }
    let attested = canonical_session_attestation(
        &attestation.parent_member_pubkey,
        &attestation.session_pubkey,
        attestation.expires_at,
    );
    parent
        .verify_hex(&attested, &attestation.signature)
        .map_err(|check| match check {
            SignatureCheck::Malformed => VerifyError::Malformed("parentAttestation.signature"),
            SignatureCheck::Invalid => VerifyError::BadAttestationSignature,
        })?;

    let canonical = canonical_session_hello(
        &hello.mesh_id,
        &hello.parent_member_pubkey,
        &hello.session_pubkey,
        hello.timestamp,
    );
    session
        .verify_hex(&canonical, &hello.signature)
        .map_err(|check| match check {
            SignatureCheck::Malformed => VerifyError::Malformed("signature"),
            SignatureCheck::Invalid => VerifyError::BadSignature,
        })
}

fn check_skew(timestamp_ms: u64, now_ms: u64) -> Result<(), VerifyError> {
    if timestamp_ms.abs_diff(now_ms) <= MAX_CLOCK_SKEW_MS {
        return Ok(());
    }
    let skew = i128::from(timestamp_ms) - i128::from(now_ms);
    let skew_ms = i64::try_from(skew).unwrap_or(if skew > 0 { i64::MAX } else { i64::MIN });
    Err(VerifyError::TimestampSkew { skew_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
        28, 29, 30, 31, 32,
    ];
    const PUBKEY: &str = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";
    const SECRET_HEX: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\
                              79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";
    const TS: u64 = 1_700_000_000_000;
    const HOUR_MS: u64 = 60 * 60 * 1000;

    fn member() -> MemberIdentity {
        MemberIdentity {
            mesh_id: "mesh-test".into(),
            member_id: "member-1".into(),
            secret: SecretKey::from_seed(SEED),
        }
    }

    fn presence() -> Presence {
        Presence {
            session_id: "sess-1".into(),
            pid: 42,
            cwd: "/tmp".into(),
            extras: HelloExtras::default().into(),
        }
    }

    fn session_key() -> SecretKey {
        SecretKey::from_seed([0x42; 32])
    }

    // proves B12: the canonical string and signature are byte-exact; the signature
    // literal was cross-checked against an independent ed25519 implementation.
    #[test]
    fn hello_signature_matches_the_fixed_test_vector() {
        let key = SecretKey::from_seed(SEED);
        assert_eq!(key.public_key().to_hex(), PUBKEY);
        assert_eq!(
            canonical_hello("mesh-test", "member-1", PUBKEY, TS),
            format!("mesh-test|member-1|{PUBKEY}|1700000000000")
        );
        let expected = "6d51bc0cb49d0556e5c65ec25972c1867f9783ee0f9eb62e10ea0f19b415a5d4\
                        30e8e66dc2df0d15b240722c1595ba6a162e5bcc6ca04e6ff47e2a1eb5647803";
        assert_eq!(sign_hello(&key, "mesh-test", "member-1", TS), expected);
        let hello = member().hello(&presence(), TS);
        assert_eq!(hello.signature, expected);
        assert_eq!(hello.pubkey, PUBKEY);
        assert_eq!(hello.timestamp, TS);
    }

    // proves B12: the attestation and session hello strings are exactly as specified.
    #[test]
    fn session_canonical_strings_match_the_protocol() {
        assert_eq!(
            canonical_session_attestation("pp", "ss", 5),
            "claudemesh-session-attest|pp|ss|5"
        );
        assert_eq!(
            canonical_session_hello("m", "pp", "ss", 7),
            "claudemesh-session-hello|m|pp|ss|7"
        );
        let att = mint_attestation(
            &SecretKey::from_seed(SEED),
            &session_key().public_key(),
            TS + HOUR_MS,
        );
        assert_eq!(
            att.signature,
            "3edbfe33afa98f2075f147d13051b12f6c5c1f58f76fc2661ea384e56d2db2ca\
             b4eda3b0dddef8f613e4ad2e52eb982b1830d6cd60fd582705df4e1d4b3bd401"
        );
    }

    #[test]
    fn secret_hex_round_trips() {
        let key = SecretKey::from_hex(SECRET_HEX).expect("valid test key");
        assert_eq!(key.to_hex(), SECRET_HEX);
        assert_eq!(key.public_key().to_hex(), PUBKEY);
        // Uppercase config files load too; output is always lowercase.
        let upper = SecretKey::from_hex(&SECRET_HEX.to_uppercase()).expect("valid test key");
        assert_eq!(upper.to_hex(), SECRET_HEX);
    }

    #[test]
    fn secret_hex_rejects_bad_input() {
        let mut mismatched = SECRET_HEX.to_owned();
        mismatched.replace_range(127.., "5");
        assert_eq!(
            SecretKey::from_hex(&mismatched).err(),
            Some(KeyError::PublicHalfMismatch)
        );
        assert_eq!(
            SecretKey::from_hex(&SECRET_HEX[..64]).err(),
            Some(KeyError::BadHex(HexError::WrongLength {
                expected: 128,
                got: 64
            }))
        );
        let mut not_hex = SECRET_HEX.to_owned();
        not_hex.replace_range(0..1, "g");
        assert_eq!(
            SecretKey::from_hex(&not_hex).err(),
            Some(KeyError::BadHex(HexError::InvalidChar { index: 0 }))
        );
        assert!(PublicKey::from_hex("zz").is_err());
    }

    // proves X5: secrets never reach logs through Debug.
    #[test]
    fn debug_never_prints_the_secret() {
        let key = SecretKey::from_seed(SEED);
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("SecretKey(<redacted>, pubkey={PUBKEY})"));
        assert!(!shown.contains(&SECRET_HEX[..64]));
        let shown = format!("{:?}", member());
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&SECRET_HEX[..64]));
    }

    // proves B12: a broker accepts a freshly signed hello within the skew window.
    #[test]
    fn verify_accepts_a_good_hello() {
        let hello = member().hello(&presence(), TS);
        assert_eq!(verify_hello(&hello, TS), Ok(()));
        assert_eq!(verify_hello(&hello, TS + MAX_CLOCK_SKEW_MS), Ok(()));
        assert_eq!(verify_hello(&hello, TS - MAX_CLOCK_SKEW_MS), Ok(()));
    }

    #[test]
    fn verify_rejects_skew_in_both_directions() {
        let hello = member().hello(&presence(), TS);
        let late = verify_hello(&hello, TS + MAX_CLOCK_SKEW_MS + 1);
        assert_eq!(late, Err(VerifyError::TimestampSkew { skew_ms: -60_001 }));
        let early = verify_hello(&hello, TS - MAX_CLOCK_SKEW_MS - 1);
        assert_eq!(early, Err(VerifyError::TimestampSkew { skew_ms: 60_001 }));
        assert_eq!(early.err().map(|e| e.code()), Some("timestamp_skew"));
        // Extreme clocks saturate instead of overflowing.
        let far = verify_hello(&hello, u64::MAX);
        assert!(matches!(far, Err(VerifyError::TimestampSkew { skew_ms }) if skew_ms < 0));
    }

    #[test]
    fn verify_rejects_a_flipped_signature_char() {
        let mut hello = member().hello(&presence(), TS);
        let flipped = if hello.signature.starts_with('0') {
            "1"
        } else {
            "0"
        };
        hello.signature.replace_range(0..1, flipped);
        let err = verify_hello(&hello, TS);
        assert_eq!(err, Err(VerifyError::BadSignature));
        assert_eq!(err.err().map(|e| e.code()), Some("bad_signature"));
        // A signature by the right key over another member id fails too.
        let mut other = member().hello(&presence(), TS);
        other.member_id = "member-2".into();
        assert_eq!(verify_hello(&other, TS), Err(VerifyError::BadSignature));
    }

    #[test]
    fn verify_rejects_malformed_fields() {
        let good = member().hello(&presence(), TS);
        let mut short_sig = good.clone();
        short_sig.signature.truncate(100);
        assert_eq!(
            verify_hello(&short_sig, TS),
            Err(VerifyError::Malformed("signature"))
        );
        let mut bad_key = good;
        bad_key.pubkey = "not hex".into();
        let err = verify_hello(&bad_key, TS);
        assert_eq!(err, Err(VerifyError::Malformed("pubkey")));
        assert_eq!(err.err().map(|e| e.code()), Some("malformed"));
    }

    // proves B12: a session hello carries a fresh attestation and verifies.
    #[test]
    fn verify_accepts_a_good_session_hello() {
        let hello = member().session_hello(&session_key(), &presence(), TS, HOUR_MS);
        assert_eq!(hello.parent_attestation.expires_at, TS + HOUR_MS);
        assert_eq!(hello.parent_member_pubkey, PUBKEY);
        assert_eq!(hello.parent_attestation.parent_member_pubkey, PUBKEY);
        assert_eq!(verify_session_hello(&hello, TS), Ok(()));
    }

    // proves B12, D8: a stale attestation is refused, so one is re-minted per attempt.
    #[test]
    fn verify_rejects_expired_or_too_long_attestations() {
        let hello = member().session_hello(&session_key(), &presence(), TS, HOUR_MS);
        // Broker clock past expiry but hello re-signed with a fresh timestamp.
        let later = TS + 2 * HOUR_MS;
        let mut stale = member().session_hello(&session_key(), &presence(), later, 0);
        stale.parent_attestation = hello.parent_attestation.clone();
        let err = verify_session_hello(&stale, later);
        assert_eq!(err, Err(VerifyError::Expired));
        assert_eq!(err.err().map(|e| e.code()), Some("expired"));

        let too_long = member().session_hello(&session_key(), &presence(), TS, MAX_ATTESTATION_TTL_MS + 1);
        assert_eq!(verify_session_hello(&too_long, TS), Err(VerifyError::Expired));
        let max = member().session_hello(&session_key(), &presence(), TS, MAX_ATTESTATION_TTL_MS);
        assert_eq!(verify_session_hello(&max, TS), Ok(()));
    }

    #[test]
    fn verify_rejects_attestation_for_other_keys() {
        let mut hello = member().session_hello(&session_key(), &presence(), TS, HOUR_MS);
        let other = mint_attestation(
            &SecretKey::from_seed(SEED),
            &SecretKey::from_seed([7; 32]).public_key(),
            TS + HOUR_MS,
        );
        hello.parent_attestation = other;
        let err = verify_session_hello(&hello, TS);
        assert_eq!(err, Err(VerifyError::AttestationMismatch));
        assert_eq!(err.err().map(|e| e.code()), Some("attestation_mismatch"));
    }

    #[test]
    fn verify_rejects_bad_session_material() {
        let good = member().session_hello(&session_key(), &presence(), TS, HOUR_MS);

        let mut bad_session = good.clone();
        bad_session.session_pubkey = "00".into();
        let err = verify_session_hello(&bad_session, TS);
        assert_eq!(err, Err(VerifyError::BadSessionPubkey));
        assert_eq!(err.err().map(|e| e.code()), Some("bad_session_pubkey"));

        let mut bad_parent = good.clone();
        bad_parent.parent_member_pubkey = "xyz".into();
        let err = verify_session_hello(&bad_parent, TS);
        assert_eq!(err, Err(VerifyError::BadParentPubkey));
        assert_eq!(err.err().map(|e| e.code()), Some("bad_parent_pubkey"));

        let mut forged = good.clone();
        forged.parent_attestation.signature = good.signature.clone();
        let err = verify_session_hello(&forged, TS);
        assert_eq!(err, Err(VerifyError::BadAttestationSignature));
        assert_eq!(err.err().map(|e| e.code()), Some("bad_signature"));

        let mut wrong_mesh = good.clone();
        wrong_mesh.mesh_id = "other-mesh".into();
        assert_eq!(
            verify_session_hello(&wrong_mesh, TS),
            Err(VerifyError::BadSignature)
        );

        let mut skewed = good;
        skewed.timestamp += MAX_CLOCK_SKEW_MS + 1;
        assert!(matches!(
            verify_session_hello(&skewed, TS),
            Err(VerifyError::TimestampSkew { .. })
        ));
    }

    // proves B12: a hello survives the wire and still verifies on the broker side.
    #[test]
    fn signed_hellos_survive_encode_and_decode() {
        use crate::mesh::wire::{decode_client_frame, ClientFrame};
        let frame: ClientFrame = member().hello(&presence(), TS).into();
        match decode_client_frame(&frame.encode(), 1 << 16) {
            Ok(ClientFrame::Hello(h)) => assert_eq!(verify_hello(&h, TS), Ok(())),
            other => panic!("unexpected {other:?}"),
        }
        let frame: ClientFrame = member()
            .session_hello(&session_key(), &presence(), TS, HOUR_MS)
            .into();
        match decode_client_frame(&frame.encode(), 1 << 16) {
            Ok(ClientFrame::SessionHello(h)) => assert_eq!(verify_session_hello(&h, TS), Ok(())),
            other => panic!("unexpected {other:?}"),
        }
    }
}
