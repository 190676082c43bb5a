//! End-to-end encryption of direct messages (B14), exactly as the real product
//! does it (`PROTOCOL.md`, `apps/cli/src/services/crypto/box.ts`): libsodium's
//! `crypto_box_easy` — X25519 + XSalsa20-Poly1305 — between the sender's and the
//! recipient's ed25519 keys, each converted to X25519 the way
//! `crypto_sign_ed25519_{sk,pk}_to_curve25519` converts them.
//!
//! The primitives are RustCrypto's `crypto_box` and `curve25519-dalek`; this module
//! only converts keys and lays out bytes. The 24-byte nonce is an argument: proto
//! has no randomness of its own, the session draws it from its seeded generator.

use std::collections::BTreeMap;

use base64::Engine as _;
use crypto_box::aead::{Aead, AeadInPlace};
use curve25519_dalek::edwards::CompressedEdwardsY;
use thiserror::Error;

use super::identity::{PublicKey, SecretKey};

/// Bytes in a `crypto_box` nonce.
pub const NONCE_LEN: usize = 24;

/// Bytes the Poly1305 tag adds to a ciphertext (`crypto_box_MACBYTES`).
pub const TAG_LEN: usize = 16;

/// Why a direct message could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The other side's ed25519 key has no X25519 counterpart that is safe to use
    /// (not a curve point, or of small order: libsodium refuses these too).
    #[error("the public key cannot be used for encryption")]
    BadPublicKey,
    /// The ciphertext does not open with this key pair: not for us, from someone
    /// else, or altered on the way.
    #[error("the message does not open with this key")]
    Unopenable,
    /// The nonce or ciphertext is not standard base64 of the right length.
    #[error("the nonce or ciphertext is not valid base64 of the right length")]
    Malformed,
}

/// The X25519 public key of an ed25519 public key
/// (`crypto_sign_ed25519_pk_to_curve25519`).
pub fn x25519_public(key: &PublicKey) -> Result<[u8; 32], CryptoError> {
    let point = CompressedEdwardsY(*key.as_bytes())
        .decompress()
        .ok_or(CryptoError::BadPublicKey)?;
    if point.is_small_order() {
        return Err(CryptoError::BadPublicKey);
    }
    Ok(point.to_montgomery().to_bytes())
}

/// The X25519 secret key of an ed25519 secret key
/// (`crypto_sign_ed25519_sk_to_curve25519`: the clamped first half of
/// SHA-512 of the seed).
pub fn x25519_secret(key: &SecretKey) -> [u8; 32] {
    curve25519_dalek::scalar::clamp_integer(key.signing_key().to_scalar_bytes())
}

fn salsa_box(other: &PublicKey, mine: &SecretKey) -> Result<crypto_box::SalsaBox, CryptoError> {
    let public = crypto_box::PublicKey::from(x25519_public(other)?);
    let secret = crypto_box::SecretKey::from(x25519_secret(mine));
    Ok(crypto_box::SalsaBox::new(&public, &secret))
}

/// Seals `plaintext` for `recipient` from `sender` (`crypto_box_easy`): the tag
/// followed by the XSalsa20 ciphertext, `plaintext.len() + TAG_LEN` bytes.
pub fn seal(
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
    recipient: &PublicKey,
    sender: &SecretKey,
) -> Result<Vec<u8>, CryptoError> {
    // Encryption fails only for messages beyond XSalsa20's 256 GiB stream.
    DirectBox::new(recipient, sender)?.seal(nonce, plaintext)
}

/// Opens what [`seal`] made (`crypto_box_open_easy`), checking the tag.
pub fn open(
    ciphertext: &[u8],
    nonce: &[u8; NONCE_LEN],
    sender: &PublicKey,
    recipient: &SecretKey,
) -> Result<Vec<u8>, CryptoError> {
    DirectBox::new(sender, recipient)?.open(nonce, ciphertext)
}

/// The shared key of one pair of keys (`crypto_box_beforenm`), computed once:
/// the X25519 step costs far more than sealing a short message.
pub struct DirectBox(crypto_box::SalsaBox);

impl DirectBox {
    /// The box between `other`'s public key and `mine`.
    pub fn new(other: &PublicKey, mine: &SecretKey) -> Result<Self, CryptoError> {
        salsa_box(other, mine).map(Self)
    }

    /// [`seal`] with this pair's precomputed key.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0
            .encrypt(nonce.into(), plaintext)
            .map_err(|_| CryptoError::Unopenable)
    }

    /// [`open`] with this pair's precomputed key.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buffer = ciphertext.to_vec();
        self.open_in_place(nonce, &mut buffer)?;
        Ok(buffer)
    }

    /// Opens `sealed` (tag, then ciphertext) where it lies: on success it holds
    /// the plaintext; on failure it is unchanged, so the next key can try. Every
    /// push is tried this way, and most pushes are not sealed for us: no copy.
    pub fn open_in_place(&self, nonce: &[u8; NONCE_LEN], sealed: &mut Vec<u8>) -> Result<(), CryptoError> {
        if sealed.len() < TAG_LEN {
            return Err(CryptoError::Unopenable);
        }
        let (tag, body) = sealed.split_at_mut(TAG_LEN);
        let tag = crypto_box::Tag::clone_from_slice(tag);
        // The tag is checked before anything is decrypted, so a failure leaves
        // the bytes as they were.
        self.0
            .decrypt_in_place_detached(nonce.into(), b"", body, &tag)
            .map_err(|_| CryptoError::Unopenable)?;
        sealed.drain(..TAG_LEN);
        Ok(())
    }
}

impl std::fmt::Debug for DirectBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectBox(<redacted>)")
    }
}

/// Shared keys kept by a session: how many pairs before the cache starts over.
/// A session talks to few peers; a flood of pushes from fresh keys costs a
/// recomputation each, never memory.
pub const BOX_CACHE_CAP: usize = 64;

/// The [`DirectBox`]es of one session, by (their key, my key), at most
/// [`BOX_CACHE_CAP`] of them.
#[derive(Default)]
pub struct BoxCache {
    boxes: BTreeMap<([u8; 32], [u8; 32]), DirectBox>,
}

// A cache is no state of the session: what it holds changes no decision, so its
// Debug shows none of it (a refused send may have filled it).
impl std::fmt::Debug for BoxCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxCache").finish_non_exhaustive()
    }
}

impl BoxCache {
    /// The box between `other` and `mine`, computed on first use.
    pub fn get(&mut self, other: &PublicKey, mine: &SecretKey) -> Result<&DirectBox, CryptoError> {
        self.get_raw(other.as_bytes(), mine)
    }

    /// [`BoxCache::get`] for a key still in its 32 raw bytes: a hit costs no
    /// point decompression, which every push would otherwise pay.
    pub fn get_raw(&mut self, other: &[u8; 32], mine: &SecretKey) -> Result<&DirectBox, CryptoError> {
        let key = (*other, *mine.public_bytes());
        if !self.boxes.contains_key(&key) {
            let other = PublicKey::from_bytes(other).map_err(|_| CryptoError::BadPublicKey)?;
            let made = DirectBox::new(&other, mine)?;
            if self.boxes.len() >= BOX_CACHE_CAP {
                self.boxes.clear();
            }
            self.boxes.insert(key, made);
        }
        self.boxes.get(&key).ok_or(CryptoError::BadPublicKey)
    }

    /// Pairs cached now.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }
}

/// A sealed direct message as the wire carries it: standard base64 with padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Base64 of the 24-byte nonce.
    pub nonce: String,
    /// Base64 of the tag and ciphertext.
    pub ciphertext: String,
}

/// Seals a UTF-8 message into its wire [`Envelope`] (the product's `encryptDirect`).
pub fn encrypt_direct(
    message: &str,
    nonce: &[u8; NONCE_LEN],
    recipient: &PublicKey,
    sender: &SecretKey,
) -> Result<Envelope, CryptoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = seal(message.as_bytes(), nonce, recipient, sender)?;
    Ok(Envelope {
        nonce: b64.encode(nonce),
        ciphertext: b64.encode(sealed),
    })
}

/// Opens a wire envelope into its plaintext bytes (the product's `decryptDirect`,
/// minus the UTF-8 step, which the caller decides on).
pub fn decrypt_direct(
    nonce_b64: &str,
    ciphertext_b64: &str,
    sender: &PublicKey,
    recipient: &SecretKey,
) -> Result<Vec<u8>, CryptoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce: [u8; NONCE_LEN] = b64
        .decode(nonce_b64)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(CryptoError::Malformed)?;
    let sealed = b64.decode(ciphertext_b64).map_err(|_| CryptoError::Malformed)?;
    open(&sealed, &nonce, sender, recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce_0_to_23() -> [u8; NONCE_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    // proves B14: the PROTOCOL.md vector, computed with libsodium 0.7.15.
    #[test]
    fn protocol_vector_matches_libsodium() {
        let alice = SecretKey::from_seed([1; 32]);
        let bob = SecretKey::from_seed([2; 32]);
        assert_eq!(
            alice.public_key().to_hex(),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        assert_eq!(
            bob.public_key().to_hex(),
            "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
        );
        let env = encrypt_direct(
            "hello bob, from the mesh",
            &nonce_0_to_23(),
            &bob.public_key(),
            &alice,
        )
        .unwrap();
        assert_eq!(env.nonce, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
        assert_eq!(
            env.ciphertext,
            "Tek1FSudt2FzZiuO0dfyLasdsc4zQc6NoovzGAzTce9u01DsLi5ATw=="
        );
        let plain = decrypt_direct(&env.nonce, &env.ciphertext, &alice.public_key(), &bob).unwrap();
        assert_eq!(plain, b"hello bob, from the mesh");
    }

    // proves B14: only the intended recipient opens it, and tampering is caught.
    #[test]
    fn only_the_recipient_opens_and_tampering_fails() {
        let alice = SecretKey::from_seed([1; 32]);
        let bob = SecretKey::from_seed([2; 32]);
        let eve = SecretKey::from_seed([3; 32]);
        let nonce = nonce_0_to_23();
        let mut sealed = seal(b"secret", &nonce, &bob.public_key(), &alice).unwrap();
        assert_eq!(sealed.len(), 6 + TAG_LEN);
        assert_eq!(
            open(&sealed, &nonce, &alice.public_key(), &bob).unwrap(),
            b"secret"
        );
        assert_eq!(
            open(&sealed, &nonce, &alice.public_key(), &eve),
            Err(CryptoError::Unopenable)
        );
        assert_eq!(
            open(&sealed, &nonce, &eve.public_key(), &bob),
            Err(CryptoError::Unopenable)
        );
        sealed[TAG_LEN] ^= 1;
        assert_eq!(
            open(&sealed, &nonce, &alice.public_key(), &bob),
            Err(CryptoError::Unopenable)
        );
        assert_eq!(
            open(&[0; 5], &nonce, &alice.public_key(), &bob),
            Err(CryptoError::Unopenable)
        );
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        let alice = SecretKey::from_seed([1; 32]);
        let bob = SecretKey::from_seed([2; 32]);
        let pk = alice.public_key();
        assert_eq!(
            decrypt_direct("AAEC", "AAAA", &pk, &bob),
            Err(CryptoError::Malformed)
        );
        assert_eq!(
            decrypt_direct("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", "!!", &pk, &bob),
            Err(CryptoError::Malformed)
        );
    }
}
