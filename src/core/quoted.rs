//! Text quoted in a message: `"…"`, with quotes, backslashes and control
//! characters escaped so a message shows exactly what was given and cannot
//! be broken into lines. Not `{:?}`: Rust's `Debug` for strings brings
//! Unicode tables into the wasm that no message needs.

use std::fmt;

/// `text` in double quotes, escaped (see the module).
#[derive(Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut rest = self.0;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c.is_control()) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                other => write!(f, "\\u{{{:x}}}", other as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)?;
        f.write_str("\"")
    }
}

/// `text` quoted, or `none` when there is no text (what `{:?}` of an
/// `Option<String>` said, without its `Some(…)`).
pub fn quoted_or_none(text: Option<&str>) -> String {
    text.map_or_else(|| "none".to_owned(), |text| Quoted(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_only_quoted() {
        assert_eq!(Quoted("clientId").to_string(), "\"clientId\"");
        assert_eq!(Quoted("").to_string(), "\"\"");
        assert_eq!(Quoted("héllo ✓").to_string(), "\"héllo ✓\"");
    }

    #[test]
    fn quotes_backslashes_and_control_characters_are_escaped() {
        assert_eq!(Quoted("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(Quoted("x\ny\rz\tw").to_string(), r#""x\ny\rz\tw""#);
        assert_eq!(
            Quoted("\u{0}\u{7f}\u{85}").to_string(),
            r#""\u{0}\u{7f}\u{85}""#
        );
    }

    #[test]
    fn printable_text_reads_as_debug_would_show_it() {
        for text in ["extraParams", "a\"b", "tab\there", "back\\slash", "ünï"] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"));
        }
    }

    #[test]
    fn an_absent_value_is_none() {
        assert_eq!(quoted_or_none(None), "none");
        assert_eq!(quoted_or_none(Some("sig")), "\"sig\"");
    }
}
