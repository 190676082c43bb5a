//! A received message with its body decoded (B7, B14), so no application
//! base64-decodes or decrypts by hand.
//!
//! A push does not say whether it was direct: the body tells. One from a real
//! key whose envelope opens with one of our secrets is an encrypted direct
//! message; one that opens with neither but is base64 of readable text is a
//! group, broadcast or topic message (sent in the clear, PROTOCOL.md); anything
//! else is undecryptable and is never shown as bytes. The product's own client
//! reports every peer's broadcast as unreadable because it treats each push with
//! a sender key as direct; reading the clear text when the box does not open
//! does better, and [`PushBody::Text::encrypted`] says which one it was.

use std::ops::Deref;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use super::crypto::{BoxCache, NONCE_LEN, TAG_LEN};
use super::hex;
use super::identity::SecretKey;
use super::wire::PushFrame;

/// What a push says.
#[derive(Clone, Debug, PartialEq)]
pub enum PushBody {
    /// A message's text.
    Text {
        /// The plaintext.
        text: String,
        /// Whether it came end-to-end encrypted to us (a direct message, B14);
        /// `false` for group, broadcast and topic messages, which travel in the
        /// clear.
        encrypted: bool,
    },
    /// A direct message that opens with none of our keys (sent to another key
    /// of ours, or tampered with), or a body that is not readable text. Counted
    /// in the session's stats; its bytes are never shown.
    Undecryptable,
    /// A broker event (`subtype: "system"`), e.g. `peer_joined`.
    System {
        /// The event's name (`"system"` when the broker gave none).
        event: String,
        /// Its payload.
        data: Option<Value>,
    },
}

impl PushBody {
    /// The text, when there is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            PushBody::Text { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A push with its decoded body; derefs to the wire frame for every other field.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    /// The frame as the broker sent it.
    pub frame: Arc<PushFrame>,
    /// What it says.
    pub body: PushBody,
}

impl Deref for Push {
    type Target = PushFrame;

    fn deref(&self) -> &PushFrame {
        &self.frame
    }
}

/// Decodes `frame`'s body, opening a direct envelope with each of `secrets` in
/// turn (the session key first, then the member key: PROTOCOL.md).
pub fn decode_body(frame: &PushFrame, secrets: &[&SecretKey], boxes: &mut BoxCache) -> PushBody {
    if frame.subtype.as_deref() == Some("system") || frame.sender_pubkey == "system" {
        return PushBody::System {
            event: frame.event.clone().unwrap_or_else(|| "system".to_owned()),
            data: frame.event_data.clone(),
        };
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(mut sealed) = b64.decode(&frame.ciphertext) else {
        return PushBody::Undecryptable;
    };
    // 24 bytes are 32 base64 characters; room for 33 lets a longer nonce fail
    // as too long rather than as no room.
    let mut nonce_buf = [0u8; NONCE_LEN + 9];
    let nonce: Option<[u8; NONCE_LEN]> = match b64.decode_slice(&frame.nonce, &mut nonce_buf) {
        Ok(NONCE_LEN) => nonce_buf[..NONCE_LEN].try_into().ok(),
        _ => None,
    };
    let sender = hex::decode_array::<32>(&frame.sender_pubkey).ok();
    if let (Some(nonce), Some(sender)) = (nonce, sender) {
        if sealed.len() >= TAG_LEN && frame.topic.is_none() {
            for secret in secrets {
                let Ok(direct) = boxes.get_raw(&sender, secret) else {
                    break;
                };
                if direct.open_in_place(&nonce, &mut sealed).is_ok() {
                    return match String::from_utf8(sealed) {
                        Ok(text) => PushBody::Text {
                            text,
                            encrypted: true,
                        },
                        Err(_) => PushBody::Undecryptable,
                    };
                }
            }
        }
    }
    match String::from_utf8(sealed) {
        Ok(text) if is_readable(&text) => PushBody::Text {
            text,
            encrypted: false,
        },
        _ => PushBody::Undecryptable,
    }
}

/// Whether clear text looks like a message: no control characters but line
/// breaks and tabs. A direct message that did not open is random bytes, which
/// pass this (and UTF-8) with a chance far below one in a million at its least
/// length of 17 bytes; so it is not shown as garbage.
fn is_readable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::crypto::encrypt_direct;

    fn frame(sender: &str, nonce: &str, ciphertext: &str) -> PushFrame {
        PushFrame {
            sender_pubkey: sender.into(),
            nonce: nonce.into(),
            ciphertext: ciphertext.into(),
            ..PushFrame::default()
        }
    }

    // proves B14: a direct push opens with the session key, then the member key.
    #[test]
    fn direct_push_opens_with_session_then_member_secret() {
        let alice = SecretKey::from_seed([1; 32]);
        let session = SecretKey::from_seed([2; 32]);
        let member = SecretKey::from_seed([3; 32]);
        let nonce = [7u8; NONCE_LEN];
        let mut boxes = BoxCache::default();
        for to in [&session, &member] {
            let env = encrypt_direct("hi", &nonce, &to.public_key(), &alice).unwrap();
            let f = frame(&alice.public_key().to_hex(), &env.nonce, &env.ciphertext);
            assert_eq!(
                decode_body(&f, &[&session, &member], &mut boxes),
                PushBody::Text {
                    text: "hi".into(),
                    encrypted: true
                }
            );
        }
        // Sealed for a key we do not hold: undecryptable, not bytes.
        let other = SecretKey::from_seed([4; 32]);
        let env = encrypt_direct("not for you", &nonce, &other.public_key(), &alice).unwrap();
        let f = frame(&alice.public_key().to_hex(), &env.nonce, &env.ciphertext);
        assert_eq!(
            decode_body(&f, &[&session, &member], &mut boxes),
            PushBody::Undecryptable
        );
    }

    // proves B14: a push in the real broker's exact shape (apps/broker/src/index.ts,
    // the drain's push) carrying the PROTOCOL.md vector opens for its recipient.
    #[test]
    fn golden_push_from_the_real_broker_opens_with_the_protocol_vector() {
        let text = concat!(
            r#"{"type":"push","messageId":"5f0c","meshId":"mesh-1","#,
            r#""senderPubkey":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","#,
            r#""priority":"next","nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","#,
            r#""ciphertext":"Tek1FSudt2FzZiuO0dfyLasdsc4zQc6NoovzGAzTce9u01DsLi5ATw==","#,
            r#""createdAt":"2026-01-01T00:00:00.000Z","client_message_id":"c1"}"#
        );
        let frame = match crate::mesh::wire::decode_broker_frame(text, 1 << 20) {
            Ok(crate::mesh::wire::BrokerFrame::Push(p)) => p,
            other => panic!("not a push: {other:?}"),
        };
        let bob = SecretKey::from_seed([2; 32]);
        assert_eq!(
            decode_body(&frame, &[&bob], &mut BoxCache::default()),
            PushBody::Text {
                text: "hello bob, from the mesh".into(),
                encrypted: true
            }
        );
        // Anyone else holds garbage they cannot read, and are told so.
        let carol = SecretKey::from_seed([3; 32]);
        assert_eq!(
            decode_body(&frame, &[&carol], &mut BoxCache::default()),
            PushBody::Undecryptable
        );
    }

    #[test]
    fn clear_text_broadcasts_system_events_and_garbage() {
        let me = SecretKey::from_seed([2; 32]);
        let alice = SecretKey::from_seed([1; 32]).public_key().to_hex();
        let mut boxes = BoxCache::default();
        let b64 = base64::engine::general_purpose::STANDARD;
        let clear = frame(
            &alice,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
            &b64.encode("hello all, from the mesh"),
        );
        assert_eq!(
            decode_body(&clear, &[&me], &mut boxes),
            PushBody::Text {
                text: "hello all, from the mesh".into(),
                encrypted: false
            }
        );
        let bytes = frame(
            &alice,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
            &b64.encode([0u8, 1, 2, 200]),
        );
        assert_eq!(decode_body(&bytes, &[&me], &mut boxes), PushBody::Undecryptable);
        assert_eq!(
            decode_body(&frame(&alice, "", "%%"), &[&me], &mut boxes),
            PushBody::Undecryptable
        );
        let mut system = frame("system", "", "");
        system.subtype = Some("system".into());
        system.event = Some("peer_joined".into());
        assert!(matches!(
            decode_body(&system, &[&me], &mut boxes),
            PushBody::System { event, .. } if event == "peer_joined"
        ));
    }
}
