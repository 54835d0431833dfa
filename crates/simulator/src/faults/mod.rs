//! Injectable faults and their compact command-line syntax.
//!
//! # Spec syntax
//!
//! ```text
//! SPEC  := KIND [":" PARAM] ("," PARAM)*
//! PARAM := NAME "=" VALUE | FLAG
//! ```
//!
//! | Kind | Aliases | Kind parameters |
//! |---|---|---|
//! | rate limited (429) | `429`, `rate-limited` | `ms=N`: `msBeforeNext` (default 1000) |
//! | server error | `500`…`599`, `error`, `server-error` | `status=5xx` (default 500, or the number given as kind) |
//! | slow answer | `slow` | `ms=N`: delay before answering normally (default 1000) |
//! | malformed JSON | `malformed`, `malformed-json` | – |
//! | endless body | `endless-body` | – (a 200 whose body streams JSON-looking filler forever) |
//! | trickling body | `trickle` | `ms=N`: the real answer, one byte every N ms (default 1000) |
//! | endless cursor | `endless-cursor`, `endless` | `repeat` or `repeat=true/false` (default false) |
//! | validation error | `400`, `422` | – (a `ValidationFailure` errors envelope) |
//! | pagination race | `race:delete`, `race:insert` | `path=` required: `/users` or `/destinations`; `times` defaults to 1 |
//! | malformed list item | `bad-item:no-id`, `bad-item:null-id`, `bad-item:not-object`, `bad-item:all`, `bad-item:repeat`, `bad-item:drop` | – |
//! | malformed audit event | `bad-event:timestamp`, `bad-event:no-timestamp` | `path` defaults to `/audit-events` |
//!
//! **Pagination race** (`race:…`): when a later page (cursor offset above 0) of the listing at
//! `path` is requested, the simulator first deletes the listing's first item, or inserts a new
//! one at its front, as a real, audited mutation (`User Removed`/`User Added`, `Destination
//! Deleted`/`Destination Created`), then answers the page with offsets computed on the new
//! state. Segment's cursors are offsets, so a client reading page by page then skips one
//! existing item (delete) or sees one twice (insert). [`super::SimHandle::races`] says which
//! item it was. Inserted users are `race-N@acme.io` with Minimal Workspace Access; inserted
//! destinations are named `race-inserted-N` and fed by the first source.
//!
//! **Malformed items** (`bad-item:…`, paginated lists only) are added to the page at its middle
//! (index `len / 2`), next to the real items, which stay as they were: `no-id` is a copy of the
//! page's first item without `id` (or `{"name":"malformed item"}` on an empty page), `null-id`
//! the same with `"id": null`, `not-object` is the string `"not-an-object"`. `all` instead
//! strips `id` from every item of the page (an API that changed shape); `repeat` replaces the
//! page's first item with a copy of its second (one item twice, one missing, nothing mutated:
//! a list whose pages disagree); `drop` leaves out the page's last item (a list that misses an
//! item that still exists). `bad-event:timestamp`
//! adds a copy of the page's first event with id `<id>-malformed` and `"timestamp":
//! "yesterday"`; `bad-event:no-timestamp` the same copy without `timestamp`. `totalEntries`
//! and cursors are not changed.
//!
//! Every kind also takes `path=/prefix` (only requests whose path is the prefix or below it,
//! segment-wise: `/users` matches `/users` and `/users/abc`, not `/usersx`), `query=NAME=VALUE`
//! (only requests whose query string has that parameter, e.g. `query=resourceType=INSERT_SOURCE`),
//! `skip=N` (let the first N matching requests through) and `times=N` (fire N times, then
//! stop; default forever).
//!
//! **Endless body** and **trickle** stand for a broken proxy or a hostile endpoint: the first
//! never ends (no `Content-Length`, chunks as fast as the client reads them), the second sends
//! the true answer, with its true `Content-Length`, so slowly that only a deadline on the whole
//! exchange stops it.
//!
//! Examples: `429:ms=2000,path=/users,skip=1,times=3`, `500`, `503,times=2`, `slow:ms=3000`,
//! `malformed,path=/sources`, `endless-cursor:repeat`, `race:delete,path=/users`,
//! `bad-item:not-object,path=/sources`, `bad-event:timestamp`.

mod body;
mod set;
mod spec;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use body::{endless_body, trickle};
pub(crate) use set::FaultSet;

/// A fault to inject into matching requests.
///
/// Parses from the compact spec syntax (see the module docs) and serialises as
/// `{"kind":{"type":"rate_limited","ms_before_next":2000},"path":"/users","skip":0,"times":3}`
/// (kind types: `rate_limited`, `server_error`, `slow`, `malformed_json`, `endless_cursor`,
/// `client_error`, `pagination_race`, `bad_item`, `bad_event`, `endless_body`, `trickle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Request-path prefix to match (segment-wise); `None` matches every API request.
    #[serde(default)]
    pub path: Option<String>,
    /// A `name=value` query parameter the request must carry; `None` matches any query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Matching requests to let through before the fault starts firing.
    #[serde(default)]
    pub skip: u32,
    /// How many times the fault fires; `None` means forever.
    #[serde(default)]
    pub times: Option<u32>,
}

/// The kinds of injectable fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer 429 with Segment's throttling body and this `msBeforeNext`.
    RateLimited {
        /// Milliseconds the client is told to wait.
        ms_before_next: u64,
    },
    /// Answer with this 5xx status and an errors envelope.
    ServerError {
        /// HTTP status, 500..=599.
        status: u16,
    },
    /// Sleep, then answer normally.
    Slow {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
    /// Answer 200 with a truncated, invalid JSON body.
    MalformedJson,
    /// Answer 200 with a body that never ends.
    EndlessBody,
    /// Answer normally, but send the body one byte at a time.
    Trickle {
        /// Milliseconds between two bytes.
        interval_ms: u64,
    },
    /// On paginated lists, always set `next` so a naive client never stops.
    EndlessCursor {
        /// `next` repeats `current` instead of pointing past the end.
        repeat: bool,
    },
    /// Answer with this 4xx status and an errors envelope: 400 or 422 (`ValidationFailure`) as
    /// an API version that does not know a parameter value does; 403 (`Forbidden`) or 404
    /// (`NotFound`) as an endpoint the workspace's plan lacks (set programmatically).
    ClientError {
        /// HTTP status: 400, 403, 404 or 422.
        status: u16,
    },
    /// On a later page (cursor offset above 0) of the listing at the fault's path (`/users`,
    /// `/destinations`, or a destination's `/destination/{id}/filters`, delete only), first
    /// deletes or inserts the listing's first item (a real, audited
    /// mutation), then answers. [`Fault::race`] and the `race:` spec fire once; a fault built
    /// with [`Fault::new`] fires on every later page until its `times` run out.
    PaginationRace {
        /// Delete or insert.
        action: RaceAction,
    },
    /// Adds a malformed item to a paginated list page (or, for `All`, strips every item's id).
    BadItem {
        /// What is wrong with the item.
        shape: BadItemShape,
    },
    /// Adds an audit event with a broken `timestamp` to a page of `GET /audit-events`.
    BadEvent {
        /// What is wrong with the event.
        defect: BadEventDefect,
    },
}

/// What a pagination race does before answering the later page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaceAction {
    /// Deletes the listing's first item: the client skips one existing item.
    Delete,
    /// Inserts a new item at the listing's front: the client sees one item twice.
    Insert,
}

/// A malformed list item (see the module docs for the exact values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadItemShape {
    /// An extra item without `id`.
    NoId,
    /// An extra item with `"id": null`.
    NullId,
    /// An extra item that is a string, not an object.
    NotObject,
    /// Every item of the page loses its `id`.
    All,
    /// The page's first item is replaced by a copy of its second: one item listed twice and
    /// another not at all, as a list that changed under offset cursors, with nothing changed.
    Repeat,
    /// The page's last item is left out, nothing else changes (on the last page, a list that
    /// silently misses an item that still exists).
    Drop,
}

/// A malformed audit event (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadEventDefect {
    /// An extra event whose `timestamp` is `"yesterday"`.
    TimestampNotADate,
    /// An extra event without `timestamp`.
    NoTimestamp,
}

/// Listings a pagination race can mutate.
pub(crate) const RACE_PATHS: &[&str] = &["/users", "/destinations"];

impl Fault {
    /// A fault of `kind` on every request, forever.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            path: None,
            query: None,
            skip: 0,
            times: None,
        }
    }

    /// Restricts the fault to requests under `prefix`.
    pub fn on_path(mut self, prefix: impl Into<String>) -> Self {
        self.path = Some(prefix.into());
        self
    }

    /// Restricts the fault to requests whose query has the parameter `name=value`.
    pub fn on_query(mut self, name_value: impl Into<String>) -> Self {
        self.query = Some(name_value.into());
        self
    }

    /// True if the query string `query` (as received, percent-encoded) carries this fault's
    /// parameter, or the fault has none.
    pub fn matches_query(&self, query: &str) -> bool {
        let Some(wanted) = self.query.as_deref() else {
            return true;
        };
        let (name, value) = wanted.split_once('=').unwrap_or((wanted, ""));
        // A URL parser decodes the query exactly as the server's extractors do.
        reqwest::Url::parse(&format!("http://query.invalid/?{query}"))
            .is_ok_and(|url| url.query_pairs().any(|(n, v)| n == name && v == value))
    }

    /// A pagination race on the listing at `path` (`/users` or `/destinations`), firing once.
    pub fn race(action: RaceAction, path: impl Into<String>) -> Self {
        Fault::new(FaultKind::PaginationRace { action })
            .on_path(path)
            .times(1)
    }

    /// Lets the first `n` matching requests through.
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Fires `n` times only.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// True if `path` is this fault's prefix or below it.
    pub fn matches_path(&self, path: &str) -> bool {
        let Some(prefix) = self.path.as_deref() else {
            return true;
        };
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for Fault {
    /// Writes the canonical spec, which parses back to the same fault.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::RateLimited { ms_before_next } => write!(f, "429:ms={ms_before_next}")?,
            FaultKind::ServerError { status } => write!(f, "{status}")?,
            FaultKind::Slow { delay_ms } => write!(f, "slow:ms={delay_ms}")?,
            FaultKind::MalformedJson => f.write_str("malformed")?,
            FaultKind::EndlessBody => f.write_str("endless-body")?,
            FaultKind::Trickle { interval_ms } => write!(f, "trickle:ms={interval_ms}")?,
            FaultKind::EndlessCursor { repeat: true } => f.write_str("endless-cursor:repeat")?,
            FaultKind::EndlessCursor { repeat: false } => f.write_str("endless-cursor")?,
            FaultKind::ClientError { status } => write!(f, "{status}")?,
            FaultKind::PaginationRace { action } => write!(f, "race:{}", action.spec())?,
            FaultKind::BadItem { shape } => write!(f, "bad-item:{}", shape.spec())?,
            FaultKind::BadEvent { defect } => write!(f, "bad-event:{}", defect.spec())?,
        }
        if let Some(path) = &self.path {
            write!(f, ",path={path}")?;
        }
        if let Some(query) = &self.query {
            write!(f, ",query={query}")?;
        }
        if self.skip > 0 {
            write!(f, ",skip={}", self.skip)?;
        }
        if let Some(times) = self.times {
            write!(f, ",times={times}")?;
        }
        Ok(())
    }
}

impl RaceAction {
    const ALL: [RaceAction; 2] = [RaceAction::Delete, RaceAction::Insert];

    /// The spec word, e.g. `delete`.
    pub fn spec(self) -> &'static str {
        match self {
            RaceAction::Delete => "delete",
            RaceAction::Insert => "insert",
        }
    }
}

impl BadItemShape {
    const ALL: [BadItemShape; 6] = [
        BadItemShape::NoId,
        BadItemShape::NullId,
        BadItemShape::NotObject,
        BadItemShape::All,
        BadItemShape::Repeat,
        BadItemShape::Drop,
    ];

    /// The spec word, e.g. `no-id`.
    pub fn spec(self) -> &'static str {
        match self {
            BadItemShape::NoId => "no-id",
            BadItemShape::NullId => "null-id",
            BadItemShape::NotObject => "not-object",
            BadItemShape::All => "all",
            BadItemShape::Repeat => "repeat",
            BadItemShape::Drop => "drop",
        }
    }
}

impl BadEventDefect {
    const ALL: [BadEventDefect; 2] = [
        BadEventDefect::TimestampNotADate,
        BadEventDefect::NoTimestamp,
    ];

    /// The spec word, e.g. `timestamp`.
    pub fn spec(self) -> &'static str {
        match self {
            BadEventDefect::TimestampNotADate => "timestamp",
            BadEventDefect::NoTimestamp => "no-timestamp",
        }
    }
}
