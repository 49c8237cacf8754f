//! Unpadded base64url, the encoding of PKCE verifiers and challenges, `state`
//! and `nonce` values, and JWT segments
//! ([RFC 4648 §5](https://www.rfc-editor.org/rfc/rfc4648#section-5),
//! [RFC 7636 Appendix A](https://www.rfc-editor.org/rfc/rfc7636#appendix-A)).
//!
//! Written by hand because it is a few lines and the core takes no encoding
//! dependency. Decoding is strict: padding, characters outside the alphabet,
//! impossible lengths and non-zero trailing bits are all rejected, so every
//! byte string has exactly one accepted encoding.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Why [`decode`] rejected its input. Map it into the crate
/// [`Error`](super::error::Error) variant that fits the caller's context
/// (e.g. `CorruptRecord` for a stored value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A `=` was found: this encoding is unpadded.
    Padding,
    /// A byte outside the base64url alphabet, at this byte offset.
    InvalidChar {
        /// Byte offset of the offending character.
        index: usize,
    },
    /// The length leaves a single dangling character (length % 4 == 1).
    InvalidLength,
    /// The unused low bits of the last character are not zero (a
    /// non-canonical encoding).
    TrailingBits,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Padding => f.write_str("base64url: padding is not allowed"),
            DecodeError::InvalidChar { index } => {
                write!(f, "base64url: invalid character at offset {index}")
            }
            DecodeError::InvalidLength => f.write_str("base64url: invalid length"),
            DecodeError::TrailingBits => f.write_str("base64url: non-zero trailing bits"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes bytes as base64url without padding
/// ([RFC 4648 §5](https://www.rfc-editor.org/rfc/rfc4648#section-5)).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // 1 input byte -> 2 characters, 2 -> 3, 3 -> 4.
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes unpadded base64url
/// ([RFC 4648 §5](https://www.rfc-editor.org/rfc/rfc4648#section-5)),
/// rejecting padding, invalid characters, impossible lengths and non-zero
/// trailing bits ([§3.5](https://www.rfc-editor.org/rfc/rfc4648#section-3.5)).
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let input = text.as_bytes();
    let mut values = Vec::with_capacity(input.len());
    for (index, &c) in input.iter().enumerate() {
        match sextet(c) {
            Some(v) => values.push(v),
            None if c == b'=' => return Err(DecodeError::Padding),
            None => return Err(DecodeError::InvalidChar { index }),
        }
    }
    if values.len() % 4 == 1 {
        return Err(DecodeError::InvalidLength);
    }
    let mut out = Vec::with_capacity(values.len() * 3 / 4);
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &v)| acc | (u32::from(v) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        // 2 characters -> 1 byte, 3 -> 2, 4 -> 3.
        let produced = chunk.len() - 1;
        out.extend_from_slice(&bytes[1..1 + produced]);
        let used_bits = 8 * produced;
        let spare = n & ((1u32 << (24 - used_bits)) - 1);
        if spare != 0 {
            return Err(DecodeError::TrailingBits);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors, with the padding removed.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn encodes_rfc4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded, "encode({plain:?})");
        }
    }

    #[test]
    fn decodes_rfc4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(
                decode(encoded).unwrap(),
                plain.as_bytes(),
                "decode({encoded:?})"
            );
        }
    }

    #[test]
    fn uses_the_url_safe_alphabet() {
        // Standard base64 would be "+/8=".
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn round_trips_every_byte_and_length() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            let encoded = encode(&all[..len]);
            assert!(!encoded.contains('='));
            assert_eq!(decode(&encoded).unwrap(), &all[..len]);
        }
    }

    #[test]
    fn rejects_padding() {
        assert_eq!(decode("Zg=="), Err(DecodeError::Padding));
        assert_eq!(decode("Zm8="), Err(DecodeError::Padding));
    }

    #[test]
    fn rejects_invalid_characters() {
        assert_eq!(decode("Zm+v"), Err(DecodeError::InvalidChar { index: 2 }));
        assert_eq!(decode("Zm/v"), Err(DecodeError::InvalidChar { index: 2 }));
        assert_eq!(decode("Zm9 v"), Err(DecodeError::InvalidChar { index: 3 }));
        assert_eq!(decode("Zé"), Err(DecodeError::InvalidChar { index: 1 }));
    }

    #[test]
    fn rejects_impossible_length() {
        assert_eq!(decode("Z"), Err(DecodeError::InvalidLength));
        assert_eq!(decode("Zm9vY"), Err(DecodeError::InvalidLength));
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "Zg" is canonical for "f"; "Zh" sets a spare bit.
        assert_eq!(decode("Zh"), Err(DecodeError::TrailingBits));
        assert_eq!(decode("Zm9"), Err(DecodeError::TrailingBits));
    }

    #[test]
    fn errors_display_without_the_input() {
        let message = decode("secret+value").unwrap_err().to_string();
        assert!(!message.contains("secret"));
    }
}
