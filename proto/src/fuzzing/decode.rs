//! The `decode` target: whatever arrives on a socket, in either direction.

use crate::mesh::wire::{decode_broker_frame, decode_client_frame, BrokerFrame, ClientFrame, DecodeError};

/// Frame limits tried on every input: none at all, a tight one, the text's own
/// length and one byte short of it (both edges of the size check), and no limit.
fn limits(len: usize) -> [usize; 5] {
    [0, 64, len, len.saturating_sub(1), usize::MAX]
}

/// Decodes arbitrary bytes as broker and client frames and checks what comes out.
///
/// Non-UTF-8 input is ignored (a WebSocket text frame is UTF-8 by the time the
/// host hands it over). The text is decoded whole and as the two halves of a
/// split at a point the input chooses, each under several size limits, and the
/// function panics only when:
///
/// - a frame over the limit is not refused as `TooLarge`, or one within it is;
/// - the outcome within the limit depends on the limit;
/// - a decoded frame, encoded again, does not decode to an equal frame
///   (every type but `Unknown`, whose encoding is its original text by design;
///   floats included: serde_json's `float_roundtrip` makes them exact), or an `Unknown`
///   frame does not keep its text and `type`.
pub fn decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    if text.len() > 1 {
        // The split point comes from the input itself, so the fuzzer can aim it
        // at a structural character; the halves are what a truncated or
        // reassembled-wrong frame looks like.
        let first = data.first().copied().map_or(0, usize::from);
        let mut at = (first * 257 + text.len() / 2) % text.len();
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let (head, tail) = text.split_at(at);
        check(head);
        check(tail);
    }
}

fn check(text: &str) {
    let unlimited_broker = decode_broker_frame(text, usize::MAX);
    let unlimited_client = decode_client_frame(text, usize::MAX);
    for max in limits(text.len()) {
        let broker = decode_broker_frame(text, max);
        let client = decode_client_frame(text, max);
        if text.len() > max {
            let refused = DecodeError::TooLarge { len: text.len(), max };
            assert_eq!(
                broker.err(),
                Some(refused.clone()),
                "broker frame over the {max} byte limit"
            );
            assert_eq!(
                client.err(),
                Some(refused),
                "client frame over the {max} byte limit"
            );
        } else {
            assert_eq!(
                broker, unlimited_broker,
                "broker outcome depends on the limit {max}"
            );
            assert_eq!(
                client, unlimited_client,
                "client outcome depends on the limit {max}"
            );
        }
    }
    if let Ok(frame) = unlimited_broker {
        broker_round_trip(text, &frame);
    }
    if let Ok(frame) = unlimited_client {
        client_round_trip(text, &frame);
    }
}

fn broker_round_trip(text: &str, frame: &BrokerFrame) {
    if let BrokerFrame::Unknown { kind, raw } = frame {
        assert_eq!(raw, text, "an unknown broker frame must keep its text");
        assert_eq!(frame.kind(), kind);
        return;
    }
    let wire = frame.encode();
    let again = decode_broker_frame(&wire, usize::MAX);
    assert!(
        again.as_ref() == Ok(frame),
        "broker frame round trip\n input: {text}\n wire:  {wire}\n first: {frame:?}\n again: {again:?}"
    );
}

fn client_round_trip(text: &str, frame: &ClientFrame) {
    if let ClientFrame::Unknown { kind, raw } = frame {
        assert_eq!(raw, text, "an unknown client frame must keep its text");
        assert_eq!(frame.kind(), kind);
        return;
    }
    let wire = frame.encode();
    let again = decode_client_frame(&wire, usize::MAX);
    assert!(
        again.as_ref() == Ok(frame),
        "client frame round trip\n input: {text}\n wire:  {wire}\n first: {frame:?}\n again: {again:?}"
    );
}
