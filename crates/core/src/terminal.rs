//! Text from the Segment workspace (or the database) made safe for a terminal.
//!
//! Resource names, alert summaries and error messages can carry control characters, ANSI escape
//! sequences or Unicode bidirectional overrides. Written raw to a terminal they could recolour or
//! clear the screen, forge extra output lines, or make text display in a different order than it
//! is stored (the "Trojan Source" trick). Every human (text/table/Markdown) output passes such
//! text through [`escape`]; JSON output keeps it exact.

use std::borrow::Cow;
use std::fmt;

/// Whether a character is escaped: control characters (C0, DEL, C1; newlines and ESC included)
/// and the bidirectional embedding, override and isolate characters U+202A–U+202E, U+2066–U+2069.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The text with every [`is_unsafe`] character written as a Rust-style escape (`\u{1b}`, `\n`,
/// `\u{202e}`); borrowed unchanged when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(Escaped(text).to_string())
}

/// Displays a string as [`escape`] would return it, without an intermediate allocation.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_unsafe(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_ansi_and_bidi_overrides() {
        assert_eq!(
            escape("a\u{1b}[31mred\u{202e}txt\u{2066}\n\u{9b}"),
            "a\\u{1b}[31mred\\u{202e}txt\\u{2066}\\n\\u{9b}"
        );
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            assert!(!escape(&format!("x{c}")).contains(c), "{c:?}");
        }
    }

    #[test]
    fn leaves_ordinary_text_borrowed() {
        let text = "Prod → Müller «writes» 日本 \u{200d}";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        assert_eq!(Escaped(text).to_string(), text);
    }
}
