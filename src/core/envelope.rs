//! The versioned envelope a record is stored in when encrypted at rest:
//! `{"v":1,"iv":"<base64url>","data":"<base64url>"}`.
//!
//! Written and parsed by hand (every field is a number or base64url text)
//! so no JSON library ships in the wasm. The associated data binds a record
//! to its issuer, client and kind, so a record copied from another
//! namespace fails to decrypt instead of being accepted.

use crate::core::{base64url, Error};

/// The only envelope version so far.
pub const ENVELOPE_VERSION: u32 = 1;
/// AES-GCM nonce length in bytes.
pub const IV_LEN: usize = 12;

/// An encrypted record: the nonce and the AES-GCM output (ciphertext + tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The AES-GCM nonce, fresh for every write.
    pub iv: [u8; IV_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub data: Vec<u8>,
}

impl Envelope {
    /// The stored text form.
    pub fn to_text(&self) -> String {
        format!(
            r#"{{"v":{ENVELOPE_VERSION},"iv":"{}","data":"{}"}}"#,
            base64url::encode(&self.iv),
            base64url::encode(&self.data)
        )
    }

    /// Parses the stored text form exactly as [`to_text`](Self::to_text)
    /// writes it; anything else is `corrupt_record` (an unknown version
    /// says so).
    pub fn parse(text: &str) -> Result<Envelope, Error> {
        let corrupt = |reason: &str| Error::CorruptRecord {
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix(r#"{"v":"#)
            .ok_or_else(|| corrupt("not an envelope"))?;
        // The version first, whatever follows it: a newer latchkey may lay
        // its envelope out differently, and its record must stay (rule 3).
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (version, rest) = rest.split_at(digits);
        if let Some(newer) = version
            .parse::<u32>()
            .ok()
            .filter(|v| *v > ENVELOPE_VERSION)
        {
            return Err(Error::NewerRecord { version: newer });
        }
        if version != ENVELOPE_VERSION.to_string() {
            return Err(corrupt(&format!(
                "unsupported envelope version {version:.8}"
            )));
        }
        let (iv, rest) = rest
            .strip_prefix(r#","iv":""#)
            .ok_or_else(|| corrupt("not an envelope"))?
            .split_once(r#"","data":""#)
            .ok_or_else(|| corrupt("not an envelope"))?;
        let data = rest
            .strip_suffix(r#""}"#)
            .ok_or_else(|| corrupt("not an envelope"))?;
        let iv = base64url::decode(iv)
            .ok()
            .and_then(|iv| <[u8; IV_LEN]>::try_from(iv).ok())
            .ok_or_else(|| corrupt("bad iv"))?;
        let data = base64url::decode(data).map_err(|_| corrupt("bad data"))?;
        Ok(Envelope { iv, data })
    }
}

/// The associated data for a record: binds it to issuer, client and kind.
pub fn associated_data(issuer: &str, client_id: &str, kind: &str) -> Vec<u8> {
    // Lengths first so that no two (issuer, client, kind) triples collide.
    format!(
        "latchkey/v{ENVELOPE_VERSION}/{}:{issuer}/{}:{client_id}/{kind}",
        issuer.len(),
        client_id.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            iv: [7; IV_LEN],
            data: vec![1, 2, 3, 250, 251],
        }
    }

    #[test]
    fn round_trips() {
        let text = sample().to_text();
        assert_eq!(text, r#"{"v":1,"iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#);
        assert_eq!(Envelope::parse(&text).unwrap(), sample());
    }

    #[test]
    fn rejects_what_it_did_not_write() {
        for text in [
            "",
            "{}",
            r#"{"access_token":"x"}"#,
            r#"{"v":1,"iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"} "#,
            r#"{"v":1,"iv":"BwcH","data":"AQID-vs"}"#,
            r#"{"v":1,"iv":"BwcHBwcHBwcHBwcH","data":"!!"}"#,
        ] {
            let error = Envelope::parse(text).unwrap_err();
            assert_eq!(error.code(), "corrupt_record", "{text}");
        }
    }

    #[test]
    fn a_newer_version_is_its_own_error_so_the_record_is_left_alone() {
        let text = r#"{"v":2,"iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#;
        assert_eq!(
            Envelope::parse(text).unwrap_err(),
            Error::NewerRecord { version: 2 }
        );
    }

    #[test]
    fn a_newer_version_laid_out_otherwise_is_still_newer() {
        for (text, version) in [
            (
                r#"{"v":2,"kid":"k","iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#,
                2,
            ),
            (r#"{"v":2,"data":"AQID-vs"}"#, 2),
            (r#"{"v":17}"#, 17),
        ] {
            let error = Envelope::parse(text).unwrap_err();
            assert_eq!(error, Error::NewerRecord { version }, "{text}");
        }
    }

    #[test]
    fn version_one_laid_out_otherwise_is_corrupt() {
        for text in [
            r#"{"v":1,"kid":"k","iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#,
            r#"{"v":1}"#,
            r#"{"v":"1","iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#,
            r#"{"v":99999999999,"iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#,
        ] {
            assert_eq!(
                Envelope::parse(text).unwrap_err().code(),
                "corrupt_record",
                "{text}"
            );
        }
    }

    #[test]
    fn names_an_unknown_older_version() {
        let text = r#"{"v":0,"iv":"BwcHBwcHBwcHBwcH","data":"AQID-vs"}"#;
        let error = Envelope::parse(text).unwrap_err();
        assert_eq!(error.code(), "corrupt_record");
        assert!(error.to_string().contains("version 0"), "{error}");
    }

    #[test]
    fn associated_data_separates_namespaces() {
        let a = associated_data("https://a.example", "spa", "tokens");
        assert_ne!(a, associated_data("https://a.example", "spa2", "tokens"));
        assert_ne!(
            a,
            associated_data("https://a.example", "spa", "transaction")
        );
        assert_ne!(
            associated_data("https://a.example/x", "y", "tokens"),
            associated_data("https://a.example", "x/y", "tokens")
        );
    }
}
