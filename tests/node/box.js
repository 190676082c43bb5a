// The real product's direct-message crypto (apps/cli/src/services/crypto/box.ts),
// on libsodium itself, for tests/tests/libsodium_interop.rs. Reads one JSON
// request on argv[2], prints one JSON answer.
const sodium = require("libsodium-wrappers");

(async () => {
  await sodium.ready;
  const s = sodium;
  const req = JSON.parse(process.argv[2]);
  const out = {};
  if (req.encrypt) {
    const e = req.encrypt;
    const nonce = s.randombytes_buf(s.crypto_box_NONCEBYTES);
    const ct = s.crypto_box_easy(
      s.from_string(e.message),
      nonce,
      s.crypto_sign_ed25519_pk_to_curve25519(s.from_hex(e.recipientPubkey)),
      s.crypto_sign_ed25519_sk_to_curve25519(s.from_hex(e.senderSecret)),
    );
    out.encrypted = {
      nonce: s.to_base64(nonce, s.base64_variants.ORIGINAL),
      ciphertext: s.to_base64(ct, s.base64_variants.ORIGINAL),
    };
  }
  if (req.decrypt) {
    const d = req.decrypt;
    try {
      const plain = s.crypto_box_open_easy(
        s.from_base64(d.ciphertext, s.base64_variants.ORIGINAL),
        s.from_base64(d.nonce, s.base64_variants.ORIGINAL),
        s.crypto_sign_ed25519_pk_to_curve25519(s.from_hex(d.senderPubkey)),
        s.crypto_sign_ed25519_sk_to_curve25519(s.from_hex(d.recipientSecret)),
      );
      out.decrypted = s.to_string(plain);
    } catch (err) {
      out.decrypted = null;
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((err) => {
  process.stderr.write(String(err) + "\n");
  process.exit(1);
});
