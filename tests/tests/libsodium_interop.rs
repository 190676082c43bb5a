//! tether's direct-message crypto against libsodium itself (B14): the real
//! product's `box.ts` calls, run on Node's `libsodium-wrappers` (installed from
//! the npm registry into the target directory on first run), both ways.
//!
//! Needs `node` and `npm`; without them, or without the registry, the test fails
//! and says so: it never passes by skipping.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use tether_proto::mesh::crypto::{decrypt_direct, encrypt_direct};
use tether_proto::mesh::identity::SecretKey;

/// The version PROTOCOL.md's vector was computed with.
const LIBSODIUM: &str = "libsodium-wrappers@0.7.15";

fn node_modules() -> PathBuf {
    // The tests of this binary run on parallel threads: without the lock a
    // second test saw npm's half-extracted tree ("Cannot find module
    // 'libsodium'") while the first was still installing it.
    static INSTALLED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libsodium-interop");
    let modules = dir.join("node_modules");
    // libsodium-wrappers' own directory appears before its dependency is
    // extracted; both are there only after a finished install.
    if !modules.join("libsodium-wrappers").exists() || !modules.join("libsodium").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(LIBSODIUM)
            .output()
            .unwrap_or_else(|e| panic!("this test needs npm (to install {LIBSODIUM}): {e}"));
        assert!(
            out.status.success(),
            "npm could not install {LIBSODIUM} (is the npm registry reachable?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    modules
}

fn libsodium(request: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/node/box.js");
    let out = Command::new("node")
        .arg(script)
        .arg(request.to_string())
        .env("NODE_PATH", node_modules())
        .output()
        .unwrap_or_else(|e| panic!("this test needs node: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

// proves B14: what tether seals libsodium opens, and what libsodium seals tether
// opens; a key it was not sealed for opens neither.
#[test]
fn tether_and_libsodium_read_each_others_direct_messages() {
    let alice = SecretKey::from_seed([0x11; 32]);
    let bob = SecretKey::from_seed([0x22; 32]);
    let nonce: [u8; 24] = std::array::from_fn(|i| (i * 7) as u8);
    let mine = encrypt_direct(
        "from tether, sealed for bob 🔒",
        &nonce,
        &bob.public_key(),
        &alice,
    )
    .unwrap();

    let answer = libsodium(json!({
        "decrypt": {
            "nonce": mine.nonce,
            "ciphertext": mine.ciphertext,
            "senderPubkey": alice.public_key().to_hex(),
            "recipientSecret": bob.to_hex(),
        },
        "encrypt": {
            "message": "from libsodium, sealed for alice",
            "recipientPubkey": alice.public_key().to_hex(),
            "senderSecret": bob.to_hex(),
        }
    }));
    assert_eq!(answer["decrypted"], "from tether, sealed for bob 🔒");

    let theirs = &answer["encrypted"];
    let nonce = theirs["nonce"].as_str().unwrap();
    let ciphertext = theirs["ciphertext"].as_str().unwrap();
    let plain = decrypt_direct(nonce, ciphertext, &bob.public_key(), &alice).unwrap();
    assert_eq!(plain, b"from libsodium, sealed for alice");
    let carol = SecretKey::from_seed([0x33; 32]);
    assert!(decrypt_direct(nonce, ciphertext, &bob.public_key(), &carol).is_err());

    // And libsodium refuses what tether sealed for someone else.
    let answer = libsodium(json!({"decrypt": {
        "nonce": mine.nonce,
        "ciphertext": mine.ciphertext,
        "senderPubkey": alice.public_key().to_hex(),
        "recipientSecret": carol.to_hex(),
    }}));
    assert_eq!(answer["decrypted"], Value::Null);
}

// proves B14: the golden sealed send of proto (a session seeded with 5, member
// 0x07 × 32 to bob 0x02 × 32; `golden_encrypted_send_with_a_fixed_seed`) opens
// under libsodium itself.
#[test]
fn the_golden_sealed_send_opens_with_libsodium() {
    let sender = SecretKey::from_seed([7; 32]);
    let bob = SecretKey::from_seed([2; 32]);
    let answer = libsodium(json!({"decrypt": {
        "nonce": "Tt0tEw0Nf4f1bl2ryuxUbOPdpALQGp2f",
        "ciphertext": "eo60G8oq6OXyjbitCSS5B84eg0EVHnPObZuB6rw1Mr7r",
        "senderPubkey": sender.public_key().to_hex(),
        "recipientSecret": bob.to_hex(),
    }}));
    assert_eq!(answer["decrypted"], "golden hello, bob");
}
