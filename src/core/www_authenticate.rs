//! A `WWW-Authenticate` header read as its challenges
//! ([RFC 9110 §11.6.1](https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1)).
//! An API that accepts both schemes answers with a challenge for each
//! ([RFC 9449 §7.2](https://www.rfc-editor.org/rfc/rfc9449#section-7.2)),
//! which the browser joins into one value with ", ": what a call does with
//! a 401 depends on the challenge of the scheme it sent, not on the first.

/// One challenge: its scheme and its `error` parameter, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// As sent (compare without case).
    pub scheme: &'a str,
    /// The `error` parameter's value, unquoted.
    pub error: Option<String>,
}

/// At most this many challenges are read: a header is short, and what
/// follows is not needed to decide a retry.
const MAX_CHALLENGES: usize = 16;

/// The challenges of `header`, in order. Parameters other than `error` are
/// skipped, and so is what does not parse (a `token68`, stray text), up to
/// the next comma.
pub fn challenges(header: &str) -> Vec<Challenge<'_>> {
    let mut reader = Reader {
        text: header,
        at: 0,
    };
    let mut out = Vec::new();
    while out.len() < MAX_CHALLENGES {
        reader.skip(|b| is_space(b) || b == b',');
        if reader.done() {
            break;
        }
        let scheme = reader.token();
        if scheme.is_empty() {
            reader.skip_past_comma();
            continue;
        }
        let mut challenge = Challenge {
            scheme,
            error: None,
        };
        reader.params(&mut challenge);
        out.push(challenge);
    }
    out
}

/// Whether `header` holds a challenge of `scheme` whose `error` is `error`
/// (both compared without case).
pub fn names_error(header: &str, scheme: &str, error: &str) -> bool {
    challenges(header).iter().any(|challenge| {
        challenge.scheme.eq_ignore_ascii_case(scheme)
            && challenge
                .error
                .as_deref()
                .is_some_and(|named| named.eq_ignore_ascii_case(error))
    })
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip(&mut self, mut what: impl FnMut(u8) -> bool) {
        while self.peek().is_some_and(&mut what) {
            self.at += 1;
        }
    }

    fn skip_past_comma(&mut self) {
        self.skip(|b| b != b',');
        self.at += 1;
    }

    fn token(&mut self) -> &'a str {
        let start = self.at;
        self.skip(is_tchar);
        &self.text[start..self.at]
    }

    /// The parameters after a scheme, up to the next challenge: a token
    /// that no `=` follows starts it.
    fn params(&mut self, challenge: &mut Challenge<'a>) {
        loop {
            self.skip(|b| is_space(b) || b == b',');
            if self.done() {
                return;
            }
            let start = self.at;
            let name = self.token();
            if name.is_empty() {
                self.skip_past_comma();
                continue;
            }
            self.skip(is_space);
            if self.peek() != Some(b'=') {
                self.at = start;
                return;
            }
            self.at += 1;
            self.skip(is_space);
            let value = match self.peek() {
                Some(b'"') => self.quoted(),
                _ => self.token().to_owned(),
            };
            if name.eq_ignore_ascii_case("error") && challenge.error.is_none() {
                challenge.error = Some(value);
            }
        }
    }

    /// A quoted string, unescaped; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.at += 1;
        let mut value = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += offset + 1;
                    return value;
                }
                '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                c => value.push(c),
            }
        }
        self.at = self.text.len();
        value
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 9110 §5.6.2's `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(header: &str) -> Vec<(String, Option<String>)> {
        challenges(header)
            .into_iter()
            .map(|c| (c.scheme.to_owned(), c.error))
            .collect()
    }

    /// A challenge as [`read`] shows it.
    fn ch(scheme: &str, error: Option<&str>) -> (String, Option<String>) {
        (scheme.to_owned(), error.map(str::to_owned))
    }

    #[test]
    fn one_challenge_with_its_error() {
        assert_eq!(
            read(
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
            ),
            [ch("DPoP", Some("use_dpop_nonce"))]
        );
    }

    #[test]
    fn both_schemes_joined_by_the_browser() {
        assert_eq!(
            read(r#"Bearer realm="api", DPoP error="use_dpop_nonce", algs="ES256""#),
            [ch("Bearer", None), ch("DPoP", Some("use_dpop_nonce"))]
        );
        assert_eq!(
            read(r#"DPoP algs="ES256 PS256", error="invalid_token", Bearer error="invalid_token""#),
            [
                ch("DPoP", Some("invalid_token")),
                ch("Bearer", Some("invalid_token"))
            ]
        );
    }

    #[test]
    fn spaces_around_the_equals_sign_and_unquoted_values() {
        assert_eq!(
            read("DPoP error = use_dpop_nonce"),
            [ch("DPoP", Some("use_dpop_nonce"))]
        );
    }

    #[test]
    fn a_scheme_alone_and_a_scheme_that_only_starts_like_one() {
        assert_eq!(read("Bearer"), [ch("Bearer", None)]);
        assert_eq!(
            read(r#"DPoPx error="use_dpop_nonce""#),
            [ch("DPoPx", Some("use_dpop_nonce"))]
        );
        assert!(!names_error(
            r#"DPoPx error="use_dpop_nonce""#,
            "dpop",
            "use_dpop_nonce"
        ));
    }

    #[test]
    fn quoted_strings_keep_commas_and_escapes() {
        assert_eq!(
            read(r#"Bearer error_description="a, b \"c\"", error="insufficient_scope", DPoP"#),
            [ch("Bearer", Some("insufficient_scope")), ch("DPoP", None)]
        );
        assert_eq!(
            read(r#"Bearer error="unterminated"#),
            [ch("Bearer", Some("unterminated"))]
        );
    }

    #[test]
    fn what_does_not_parse_is_skipped_to_the_next_comma() {
        assert_eq!(
            read(r#"Basic YWxhZGRpbjpvcGVuc2VzYW1l==, DPoP error="use_dpop_nonce""#),
            [ch("Basic", None), ch("DPoP", Some("use_dpop_nonce"))]
        );
        assert_eq!(read(r#", ,"quoted", Bearer"#), [ch("Bearer", None)]);
        assert!(read("").is_empty());
    }

    #[test]
    fn any_text_is_read_without_panicking() {
        // Pieces that stress the reader: quotes, escapes, commas, `=`,
        // non-ASCII text (slicing must stay on character boundaries).
        let pieces = [
            "DPoP", " ", ",", "=", "\"", "\\", "error", "é", "😀", "\t", "a", "==", "Bearer",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut header = String::new();
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                header.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            assert!(challenges(&header).len() <= MAX_CHALLENGES, "{header:?}");
            let _ = names_error(&header, "DPoP", "use_dpop_nonce");
        }
    }

    #[test]
    fn the_number_of_challenges_read_is_bounded() {
        let header = vec!["Bearer"; 100].join(", ");
        assert_eq!(challenges(&header).len(), MAX_CHALLENGES);
    }

    #[test]
    fn an_error_is_named_only_in_its_own_scheme_s_challenge() {
        let header = r#"Bearer error="invalid_token", DPoP error="use_dpop_nonce""#;
        assert!(names_error(header, "DPoP", "use_dpop_nonce"));
        assert!(names_error(header, "dpop", "USE_DPOP_NONCE"));
        assert!(!names_error(header, "Bearer", "use_dpop_nonce"));
    }
}
