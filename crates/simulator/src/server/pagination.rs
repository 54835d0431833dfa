//! Bracket pagination: cursors, the validated `pagination` query and one page of a list.

use std::ops::Range;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use super::MAX_COUNT;
use super::gate::Endless;
use super::responses::{data_body, ok, validation};

/// Standard base64 of the decimal offset, like Segment's `MA==` for 0.
pub(crate) fn encode_cursor(offset: usize) -> String {
    BASE64.encode(offset.to_string())
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = BASE64.decode(cursor.trim()).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// A validated `pagination` query.
#[derive(Debug)]
struct PageIn {
    count: usize,
    offset: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageOut {
    current: String,
    next: Option<String>,
    previous: Option<String>,
    total_entries: usize,
}

pub(super) type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Why a `pagination` query was rejected: the offending field and a message.
type PageError = (&'static str, &'static str);

fn parse_page(query: QueryPairs) -> Result<PageIn, PageError> {
    let Query(pairs) = query.map_err(|_| ("pagination", "Malformed query string"))?;
    let mut count = None;
    let mut cursor = None;
    for (key, value) in pairs {
        match key.as_str() {
            "pagination[count]" | "pagination.count" => count = Some(value),
            "pagination[cursor]" | "pagination.cursor" => cursor = Some(value),
            _ => {}
        }
    }
    let count = count.ok_or((
        "pagination",
        "pagination is required: pass pagination[count] (1 to 200) and optionally pagination[cursor]",
    ))?;
    let count = count
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|c| (1..=MAX_COUNT).contains(c))
        .ok_or((
            "pagination.count",
            "pagination.count must be an integer between 1 and 200",
        ))?;
    let offset = match cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => decode_cursor(c).ok_or((
            "pagination.cursor",
            "pagination.cursor is not a valid cursor",
        ))?,
    };
    Ok(PageIn { count, offset })
}

/// Answers one page of a list of `total` items; `items` turns the page range into views.
pub(super) fn list_page<T: Serialize>(
    key: &str,
    total: usize,
    query: QueryPairs,
    endless: Option<Extension<Endless>>,
    items: impl FnOnce(Range<usize>) -> Vec<T>,
) -> Response {
    let page = match parse_page(query) {
        Ok(p) => p,
        Err((field, message)) => return validation(field, message),
    };
    let start = page.offset.min(total);
    let end = page.offset.saturating_add(page.count).min(total);
    let current = encode_cursor(page.offset);
    let next = match endless {
        Some(Extension(Endless { repeat: true })) => Some(current.clone()),
        Some(Extension(Endless { repeat: false })) => {
            Some(encode_cursor(page.offset.saturating_add(page.count)))
        }
        None if end < total => Some(encode_cursor(end)),
        None => None,
    };
    let previous = (page.offset > 0).then(|| encode_cursor(page.offset.saturating_sub(page.count)));
    let out = PageOut {
        current,
        next,
        previous,
        total_entries: total,
    };
    ok(data_body(key, &items(start..end), Some(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_match_segment_examples() {
        assert_eq!(encode_cursor(0), "MA==");
        assert_eq!(encode_cursor(3), "Mw==");
        assert_eq!(decode_cursor("Mw=="), Some(3));
        assert_eq!(decode_cursor(&encode_cursor(123_456)), Some(123_456));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&BASE64.encode("abc")), None);
    }
}
