//! Lowercase hex, as keys and signatures are written on the wire and in config files.
//!
//! Hand-written because it is a dozen lines and proto keeps its dependency list short.

use thiserror::Error;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Why a hex string could not be turned into bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// The string has the wrong number of characters for the bytes expected.
    #[error("expected {expected} hex characters, got {got}")]
    WrongLength {
        /// Characters required (twice the byte count).
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// A character that is not a hex digit, at this byte offset of the string.
    #[error("not a hex digit at offset {index}")]
    InvalidChar {
        /// Byte offset of the offending character.
        index: usize,
    },
}

/// Encodes bytes as lowercase hex, two characters per byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly `N` bytes from `2 * N` hex characters (either case is accepted).
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let raw = text.as_bytes();
    if raw.len() != N * 2 {
        return Err(HexError::WrongLength {
            expected: N * 2,
            got: raw.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let hi = nibble(raw[2 * i]).ok_or(HexError::InvalidChar { index: 2 * i })?;
        let lo = nibble(raw[2 * i + 1]).ok_or(HexError::InvalidChar { index: 2 * i + 1 })?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte_value() {
        let bytes: [u8; 256] = core::array::from_fn(|i| i as u8);
        let text = encode(&bytes);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(decode_array::<256>(&text), Ok(bytes));
    }

    #[test]
    fn accepts_uppercase_and_rejects_garbage() {
        assert_eq!(decode_array::<2>("ABcd"), Ok([0xab, 0xcd]));
        assert_eq!(
            decode_array::<2>("abc"),
            Err(HexError::WrongLength { expected: 4, got: 3 })
        );
        assert_eq!(decode_array::<2>("abzd"), Err(HexError::InvalidChar { index: 2 }));
        // A multi-byte character must be a clean error, not a slicing panic.
        assert_eq!(decode_array::<2>("aé1"), Err(HexError::InvalidChar { index: 1 }));
    }
}
