//! Helpers shared by the fuzz targets: what the browser does around the
//! core (URL query decoding, `JSON.parse`), done natively.

use serde::de::DeserializeOwned;

use latchkey::core::ports::Json;

/// The issuer every target configures.
pub const ISSUER: &str = "https://idp.example.com";
/// The client id every target configures.
pub const CLIENT_ID: &str = "spa";
/// A fixed clock: 2023-11-14T22:13:20Z, in ms.
pub const NOW_MS: u64 = 1_700_000_000_000;

/// serde_json standing in for the browser's `JSON.parse` +
/// `serde_wasm_bindgen`, with the browser adapter's two fixed messages:
/// neither engine's message is passed on, as they can quote the text.
pub struct SerdeJson;

impl Json for SerdeJson {
    fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| "not valid JSON".to_owned())?;
        serde_json::from_value(value).map_err(|_| "JSON of an unexpected shape".to_owned())
    }
}

/// The query of an absolute URL as `URL.search` sees it: after the first
/// `?`, up to the first `#`; empty when there is none.
pub fn query_of(url: &str) -> &str {
    let before_fragment = url.split('#').next().unwrap_or("");
    match before_fragment.split_once('?') {
        Some((_, query)) => query,
        None => "",
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `text` after turning `+` into a space, as
/// `application/x-www-form-urlencoded` parsing does; a `%` not followed by
/// two hex digits stays as it is, and invalid UTF-8 becomes U+FFFD.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name/value pairs of a query string in order, repeated names kept,
/// as `URLSearchParams` yields them: split on `&`, empty pieces skipped,
/// split at the first `=` (none: the value is empty), both sides decoded.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// The length of the longest run of base64url characters
/// (`A-Z a-z 0-9 - _`) in `text`. A message whose longest run is short
/// cannot be quoting a token, a code or any other long opaque value.
pub fn longest_base64url_run(text: &str) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// A value different from `original` and from every string in `avoid`,
/// derived from `original` so that it keeps being "the same kind" of text.
pub fn different_from(original: &str, avoid: &[&str]) -> String {
    let mut candidate = format!("{original}~twin");
    while candidate == original || avoid.contains(&candidate.as_str()) {
        candidate.push('~');
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_like_url_search_params() {
        let url = "https://app.example.com/cb?code=a%2Fb+c&state=s&&flag&x=1=2&bad=%zz%4#frag";
        assert_eq!(
            query_pairs(query_of(url)),
            [
                ("code".to_string(), "a/b c".to_string()),
                ("state".to_string(), "s".to_string()),
                ("flag".to_string(), String::new()),
                ("x".to_string(), "1=2".to_string()),
                ("bad".to_string(), "%zz%4".to_string()),
            ]
        );
        assert!(query_pairs(query_of("https://app.example.com/cb")).is_empty());
        assert_eq!(query_pairs("%ff=%C3%A9")[0].0, "\u{fffd}");
        assert_eq!(query_pairs("%ff=%C3%A9")[0].1, "é");
    }

    #[test]
    fn runs_and_twins() {
        assert_eq!(longest_base64url_run("a bc-_d.ef"), 5);
        assert_eq!(longest_base64url_run(""), 0);
        let twin = different_from("x", &["x~twin"]);
        assert_ne!(twin, "x");
        assert_ne!(twin, "x~twin");
    }
}
