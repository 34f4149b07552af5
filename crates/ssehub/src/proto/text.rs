//! Which characters identifiers may carry: topics, matchers, ids and event
//! types never hold control characters (they would break SSE framing or the
//! `Last-Event-ID` header), the line and paragraph separators U+2028 and
//! U+2029 (general categories `Zl`, `Zp`: line readers other than SSE's,
//! such as JavaScript source or Python's `splitlines`, end a line there, as
//! they do at the C1 control NEL), nor invisible Unicode format characters
//! (general category `Cf`: bidirectional and zero-width controls, which let
//! two different identifiers look the same).

use icu_properties::props::GeneralCategory;
use icu_properties::CodePointMapData;

/// The first character of `value` that an identifier may not carry: a C0
/// or C1 control, DEL, a line or paragraph separator (`Zl`, `Zp`), or a
/// format character (`Cf`).
pub fn forbidden_char(value: &str) -> Option<char> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    value.chars().find(|&c| {
        c.is_control()
            || matches!(
                categories.get(c),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
    })
}

/// How a forbidden character is named in an error message.
pub fn describe(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_format_characters() {
        assert_eq!(forbidden_char("https://example.com/books/é"), None);
        for (bad, c) in [
            ("a\nb", '\n'),
            ("a\0", '\0'),
            ("a\u{7f}", '\u{7f}'),
            ("a\u{85}", '\u{85}'),
            ("a\u{200b}b", '\u{200b}'),
            ("\u{202e}abc", '\u{202e}'),
            ("a\u{feff}", '\u{feff}'),
            ("a\u{e0041}", '\u{e0041}'),
            ("a\u{ad}", '\u{ad}'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{2029}", '\u{2029}'),
        ] {
            assert_eq!(forbidden_char(bad), Some(c), "{bad:?}");
        }
        assert_eq!(describe('\u{200b}'), "U+200B");
    }
}
