//! Lone UTF-16 surrogates in `\u` escapes, repaired so that one odd name cannot fail a poll.
//!
//! JSON text may spell a character as a UTF-16 pair of `\uD83D\uDE00`-style escapes. A high
//! surrogate (`\uD800`–`\uDBFF`) not followed by a low one, or a low one (`\uDC00`–`\uDFFF`)
//! on its own, encodes no character; serde_json rejects the whole document for it. Segment has
//! been seen to pass such names through from the sources that set them, so the client replaces
//! each unpaired surrogate escape with `\uFFFD` (the replacement character) and parses again —
//! only after the first parse failed for that reason, so well-formed bodies cost nothing extra.

use serde_json::Value;

/// Parses a JSON body; on a lone-surrogate error, parses it again with every unpaired surrogate
/// escape replaced by `\uFFFD`. Any other error (or one the repair does not cure) is returned as
/// serde_json reported it first.
pub(super) fn parse_json(body: &[u8]) -> Result<Value, serde_json::Error> {
    let first = match serde_json::from_slice(body) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    if !is_surrogate_error(&first) {
        return Err(first);
    }
    match repair(body) {
        Some((fixed, replaced)) => match serde_json::from_slice(&fixed) {
            Ok(value) => {
                tracing::warn!(
                    replaced,
                    "the response had unpaired UTF-16 surrogate escapes; read them as U+FFFD"
                );
                Ok(value)
            }
            Err(_) => Err(first),
        },
        None => Err(first),
    }
}

/// Whether serde_json failed on a surrogate escape (a lone one, or a high one cut short).
fn is_surrogate_error(e: &serde_json::Error) -> bool {
    let message = e.to_string();
    message.contains("surrogate") || message.contains("unexpected end of hex escape")
}

/// The body with each unpaired surrogate escape replaced by `\uFFFD`, and how many there were;
/// `None` when there is none. `\\u…` is an escaped backslash followed by text, not an escape,
/// and a high surrogate directly followed by a low one is a valid pair, kept.
pub(super) fn repair(body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out: Option<Vec<u8>> = None;
    let mut replaced = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = hex_escape(body, i) else {
            // Any other escape (`\\`, `\"`, `\n`…) is two bytes: skip both so that the
            // character after an escaped backslash is never taken for an escape.
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF
                if hex_escape(body, i + 6).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u)) =>
            {
                i += 12;
            }
            0xD800..=0xDFFF => {
                // Same length as the escape it replaces, so offsets stay valid.
                out.get_or_insert_with(|| body.to_vec())[i..i + 6].copy_from_slice(b"\\uFFFD");
                replaced += 1;
                i += 6;
            }
            _ => i += 6,
        }
    }
    out.map(|fixed| (fixed, replaced))
}

/// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
fn hex_escape(body: &[u8], at: usize) -> Option<u16> {
    let escape = body.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(body: &str) -> Option<String> {
        repair(body.as_bytes()).map(|(b, _)| String::from_utf8(b).unwrap())
    }

    #[test]
    fn lone_high_and_low_surrogates_become_replacement_characters() {
        assert_eq!(
            repaired(r#"{"a":"x\ud800y","b":"\uDC00","c":"\uDBFF"}"#).as_deref(),
            Some(r#"{"a":"x\uFFFDy","b":"\uFFFD","c":"\uFFFD"}"#)
        );
        assert_eq!(repair(br#""\ud800\ud800""#).unwrap().1, 2);
    }

    #[test]
    fn pairs_escaped_backslashes_and_clean_bodies_are_left_alone() {
        // A valid pair (😀), an escaped backslash followed by `ud800` text, ordinary escapes.
        assert_eq!(
            repaired(r#"{"a":"\ud83d\ude00","b":"\\ud800","c":"\n\u00e9"}"#),
            None
        );
        // A high surrogate followed by a low one after an escaped backslash is still lone.
        assert_eq!(
            repaired(r#""\ud800\\udc00""#).as_deref(),
            Some(r#""\uFFFD\\udc00""#)
        );
        // An odd number of backslashes before `u`: the last one starts an escape.
        assert_eq!(repaired(r#""\\\ud800""#).as_deref(), Some(r#""\\\uFFFD""#));
    }

    #[test]
    fn parse_repairs_only_what_serde_json_rejects() {
        let value = parse_json(br#"{"name":"Bad \ud800 name","ok":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(value["name"], "Bad \u{fffd} name");
        assert_eq!(value["ok"], "\u{1f600}");
        // Other errors are reported as they were.
        let e = parse_json(br#"{"name":"\ud800" "#).unwrap_err();
        assert!(e.to_string().contains("hex escape"), "{e}");
        let e = parse_json(b"{nope").unwrap_err();
        assert!(e.to_string().contains("key must be a string"), "{e}");
    }
}
