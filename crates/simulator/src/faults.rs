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

use std::fmt;
use std::str::FromStr;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::SimError;

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
    /// On a later page (cursor offset above 0) of the listing at the fault's path (`/users` or
    /// `/destinations`), first deletes or inserts the listing's first item (a real, audited
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

/// Finds the variant whose spec word is `word`, else says which words there are.
fn variant<T: Copy>(
    kind: &str,
    word: Option<&str>,
    all: &[T],
    spec: fn(T) -> &'static str,
) -> Result<T, String> {
    let words: Vec<&str> = all.iter().map(|v| spec(*v)).collect();
    let word = word.map(str::trim).unwrap_or_default().to_ascii_lowercase();
    all.iter()
        .copied()
        .find(|v| spec(*v) == word)
        .ok_or_else(|| match word.as_str() {
            "" => format!("`{kind}` needs a variant: `{kind}:{}`", words.join("|")),
            other => format!(
                "unknown `{kind}` variant `{other}`; expected one of {}",
                words.join(", ")
            ),
        })
}

impl FromStr for Fault {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        parse_spec(spec).map_err(|reason| SimError::FaultSpec {
            spec: spec.to_owned(),
            reason,
        })
    }
}

fn parse_spec(spec: &str) -> Result<Fault, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec; expected e.g. `429:ms=2000` or `500,path=/users`".into());
    }
    let mut items = spec.split(',');
    let head = items.next().unwrap_or_default();
    let (kind_name, first_param) = match head.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (head, None),
    };
    let kind_name = kind_name.trim().to_ascii_lowercase();
    // These kinds name their variant after the colon (`race:delete`) instead of a parameter.
    let (variant_word, first_param) = match kind_name.as_str() {
        "race" | "bad-item" | "bad-event" => (first_param, None),
        _ => (None, first_param),
    };

    let mut ms: Option<u64> = None;
    let mut status: Option<u16> = None;
    let mut repeat: Option<bool> = None;
    let mut path: Option<String> = None;
    let mut query: Option<String> = None;
    let mut skip: Option<u32> = None;
    let mut times: Option<u32> = None;

    for param in first_param.into_iter().chain(items) {
        let param = param.trim();
        if param.is_empty() {
            return Err("empty parameter (stray comma?)".into());
        }
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param, None),
        };
        let need = |value: Option<&str>| {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("`{name}` needs a value, as in `{name}=N`"))
                .map(str::to_owned)
        };
        match name {
            "ms" => set_once(&mut ms, name, parse_num(name, &need(value)?)?)?,
            "status" => set_once(&mut status, name, parse_num(name, &need(value)?)?)?,
            "repeat" => {
                let flag = match value {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(format!(
                            "`repeat` is a flag or `repeat=true|false`, not `{other}`"
                        ));
                    }
                };
                set_once(&mut repeat, name, flag)?;
            }
            "path" => {
                let value = need(value)?;
                if !value.starts_with('/') {
                    return Err(format!("`path` must start with `/`, got `{value}`"));
                }
                set_once(&mut path, name, value)?;
            }
            "query" => {
                let value = need(value)?;
                if !value.contains('=') || value.starts_with('=') {
                    return Err(format!("`query` is `NAME=VALUE`, got `{value}`"));
                }
                set_once(&mut query, name, value)?;
            }
            "skip" => set_once(&mut skip, name, parse_num(name, &need(value)?)?)?,
            "times" => {
                let n: u32 = parse_num(name, &need(value)?)?;
                if n == 0 {
                    return Err("`times` must be at least 1 (omit it for forever)".into());
                }
                set_once(&mut times, name, n)?;
            }
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }

    let reject = |given: bool, param: &str| {
        if given {
            Err(format!("`{param}` does not apply to `{kind_name}`"))
        } else {
            Ok(())
        }
    };
    let kind = match kind_name.as_str() {
        "429" | "rate-limited" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::RateLimited {
                ms_before_next: ms.unwrap_or(1000),
            }
        }
        "slow" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::Slow {
                delay_ms: ms.unwrap_or(1000),
            }
        }
        "malformed" | "malformed-json" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::MalformedJson
        }
        "endless-body" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::EndlessBody
        }
        "trickle" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            let interval_ms = ms.unwrap_or(1000);
            if interval_ms == 0 {
                return Err("`trickle` needs `ms` of at least 1".into());
            }
            FaultKind::Trickle { interval_ms }
        }
        "endless-cursor" | "endless" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            FaultKind::EndlessCursor {
                repeat: repeat.unwrap_or(false),
            }
        }
        "error" | "server-error" => {
            reject(ms.is_some(), "ms")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::ServerError {
                status: server_status(status.unwrap_or(500))?,
            }
        }
        numeric if numeric.chars().all(|c| c.is_ascii_digit()) => {
            reject(ms.is_some(), "ms")?;
            reject(repeat.is_some(), "repeat")?;
            reject(status.is_some(), "status")?;
            let code: u16 = numeric
                .parse()
                .map_err(|_| format!("`{numeric}` is not an HTTP status"))?;
            if matches!(code, 400 | 422) {
                FaultKind::ClientError { status: code }
            } else {
                FaultKind::ServerError {
                    status: server_status(code)?,
                }
            }
        }
        "race" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            let action = variant("race", variant_word, &RaceAction::ALL, RaceAction::spec)?;
            match path.as_deref() {
                Some(p) if RACE_PATHS.contains(&p.trim_end_matches('/')) => {}
                Some(p) => {
                    return Err(format!(
                        "`race` works on {} only, not `{p}`",
                        RACE_PATHS.join(" and ")
                    ));
                }
                None => return Err("`race` needs `path=/users` or `path=/destinations`".into()),
            }
            // A race is a one-off by default: it fires on the first later page only.
            times = times.or(Some(1));
            FaultKind::PaginationRace { action }
        }
        "bad-item" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::BadItem {
                shape: variant(
                    "bad-item",
                    variant_word,
                    &BadItemShape::ALL,
                    BadItemShape::spec,
                )?,
            }
        }
        "bad-event" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            path = path.or_else(|| Some("/audit-events".to_owned()));
            FaultKind::BadEvent {
                defect: variant(
                    "bad-event",
                    variant_word,
                    &BadEventDefect::ALL,
                    BadEventDefect::spec,
                )?,
            }
        }
        other => {
            return Err(format!(
                "unknown fault kind `{other}`; expected one of 429, rate-limited, 5xx (e.g. 500), \
                 400, 422, error, slow, malformed, endless-body, trickle, endless-cursor, race, \
                 bad-item, bad-event"
            ));
        }
    };
    Ok(Fault {
        kind,
        path,
        query,
        skip: skip.unwrap_or(0),
        times,
    })
}

fn server_status(code: u16) -> Result<u16, String> {
    if (500..=599).contains(&code) {
        Ok(code)
    } else if code == 429 {
        Err("use `429` as the kind (not `status=429`) for rate limiting".into())
    } else {
        Err(format!(
            "status {code} is not a server error (500..=599) or a validation error (400, 422)"
        ))
    }
}

fn parse_num<T: FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{name}` must be a non-negative integer, got `{value}`"))
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("`{name}` given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// The faults in force, with their per-fault counters.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    fault: Fault,
    skipped: u32,
    fired: u32,
}

impl FaultSet {
    pub(crate) fn new(faults: Vec<Fault>) -> Self {
        let mut set = FaultSet::default();
        for f in faults {
            set.push(f);
        }
        set
    }

    pub(crate) fn push(&mut self, fault: Fault) {
        self.entries.push(Entry {
            fault,
            skipped: 0,
            fired: 0,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Picks the fault for one request and updates counters.
    ///
    /// Faults are checked in order. A spent fault (fired `times` times) and an endless-cursor
    /// fault on a request that is not a paginated list never match. A matching fault still in
    /// its `skip` phase counts the request and lets later faults have a look; the first
    /// matching fault past its skip phase fires, and later faults do not see the request.
    pub(crate) fn select(&mut self, path: &str, query: &str, paginated: bool) -> Option<FaultKind> {
        self.select_page(path, query, paginated, false)
    }

    /// [`FaultSet::select`] knowing whether the request asks for a later page (cursor offset
    /// above 0): a pagination race only fires on a later page of its own listing, and
    /// malformed-item faults only on paginated lists.
    pub(crate) fn select_page(
        &mut self,
        path: &str,
        query: &str,
        paginated: bool,
        later_page: bool,
    ) -> Option<FaultKind> {
        for e in &mut self.entries {
            if e.fault.times.is_some_and(|t| e.fired >= t)
                || !e.fault.matches_path(path)
                || !e.fault.matches_query(query)
            {
                continue;
            }
            let applies = match e.fault.kind {
                FaultKind::EndlessCursor { .. }
                | FaultKind::BadItem { .. }
                | FaultKind::BadEvent { .. } => paginated,
                FaultKind::PaginationRace { .. } => {
                    paginated
                        && later_page
                        && e.fault.path.as_deref().map(|p| p.trim_end_matches('/')) == Some(path)
                }
                _ => true,
            };
            if !applies {
                continue;
            }
            if e.skipped < e.fault.skip {
                e.skipped += 1;
                continue;
            }
            e.fired += 1;
            return Some(e.fault.kind.clone());
        }
        None
    }
}

/// Filler an endless body repeats: looks like the start of a listing, so a client that parses
/// as it reads would not stop early either.
const ENDLESS_ITEM: &[u8] = br#"{"id":"endless","email":"endless@acme.io","permissions":[]},"#;

/// A 200 whose body never ends: `{"data":{"items":[` then `ENDLESS_ITEM` forever, in 64 KiB
/// chunks, without `Content-Length`. The stream stops when the client hangs up.
pub fn endless_body() -> axum::response::Response {
    use axum::body::{Body, Bytes};
    let chunk: Bytes = ENDLESS_ITEM
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024 / ENDLESS_ITEM.len() * ENDLESS_ITEM.len())
        .collect::<Vec<u8>>()
        .into();
    let head = Bytes::from_static(br#"{"data":{"items":["#);
    let stream = futures_util::stream::iter(std::iter::once(head).chain(std::iter::repeat(chunk)))
        .map(Ok::<_, std::convert::Infallible>);
    axum::response::Response::builder()
        .status(200)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a static response is valid")
}

/// `response` with its body sent one byte every `interval_ms`; status and headers (the true
/// `Content-Length` included) are kept.
pub async fn trickle(
    response: axum::response::Response,
    interval_ms: u64,
) -> axum::response::Response {
    use axum::body::{Body, Bytes};
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::response::Response::from_parts(parts, Body::empty());
    };
    let interval = std::time::Duration::from_millis(interval_ms);
    let stream = futures_util::stream::unfold(0usize, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            // The first byte waits too: the status line arrives at once, the body does not.
            tokio::time::sleep(interval).await;
            let one: Bytes = bytes.slice(at..at + 1);
            Some((Ok::<_, std::convert::Infallible>(one), at + 1))
        }
    });
    axum::response::Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Fault {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> String {
        match s.parse::<Fault>() {
            Ok(f) => panic!("`{s}` parsed as {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn client_errors_on_one_query_parameter() {
        let f = parse("422,path=/functions,query=resourceType=INSERT_SOURCE");
        assert_eq!(
            f,
            Fault::new(FaultKind::ClientError { status: 422 })
                .on_path("/functions")
                .on_query("resourceType=INSERT_SOURCE")
        );
        assert_eq!(parse(&f.to_string()), f);
        assert!(f.matches_query("resourceType=INSERT_SOURCE&pagination%5Bcount%5D=200"));
        assert!(!f.matches_query("resourceType=SOURCE&pagination%5Bcount%5D=200"));
        assert!(!f.matches_query(""));
        let mut set = FaultSet::new(vec![f]);
        assert_eq!(set.select("/functions", "resourceType=SOURCE", true), None);
        assert_eq!(
            set.select("/functions", "resourceType=INSERT_SOURCE", true),
            Some(FaultKind::ClientError { status: 422 })
        );
        assert!(error("401").contains("not a server error"));
        assert!(error("500,query=resourceType").contains("NAME=VALUE"));
    }

    #[test]
    fn parses_good_specs() {
        assert_eq!(
            parse("endless-body,path=/users"),
            Fault::new(FaultKind::EndlessBody).on_path("/users")
        );
        assert_eq!(
            parse("trickle:ms=50"),
            Fault::new(FaultKind::Trickle { interval_ms: 50 })
        );
        assert_eq!(
            parse("trickle"),
            Fault::new(FaultKind::Trickle { interval_ms: 1000 })
        );
        assert_eq!(
            parse("429:ms=2000,path=/users,skip=1,times=3"),
            Fault::new(FaultKind::RateLimited {
                ms_before_next: 2000
            })
            .on_path("/users")
            .skip(1)
            .times(3)
        );
        assert_eq!(
            parse("500"),
            Fault::new(FaultKind::ServerError { status: 500 })
        );
        assert_eq!(
            parse("503,times=2"),
            Fault::new(FaultKind::ServerError { status: 503 }).times(2)
        );
        assert_eq!(
            parse("error:status=502"),
            Fault::new(FaultKind::ServerError { status: 502 })
        );
        assert_eq!(
            parse("slow:ms=3000"),
            Fault::new(FaultKind::Slow { delay_ms: 3000 })
        );
        assert_eq!(
            parse("slow"),
            Fault::new(FaultKind::Slow { delay_ms: 1000 })
        );
        assert_eq!(
            parse("malformed,path=/sources"),
            Fault::new(FaultKind::MalformedJson).on_path("/sources")
        );
        assert_eq!(
            parse("endless-cursor:repeat"),
            Fault::new(FaultKind::EndlessCursor { repeat: true })
        );
        assert_eq!(
            parse("endless"),
            Fault::new(FaultKind::EndlessCursor { repeat: false })
        );
        assert_eq!(
            parse(" Rate-Limited , ms = 5 "),
            Fault::new(FaultKind::RateLimited { ms_before_next: 5 })
        );
    }

    #[test]
    fn parses_races_and_malformed_records() {
        assert_eq!(
            parse("race:delete,path=/users"),
            Fault::race(RaceAction::Delete, "/users")
        );
        assert_eq!(
            parse("race:insert,path=/destinations,times=3"),
            Fault::new(FaultKind::PaginationRace {
                action: RaceAction::Insert
            })
            .on_path("/destinations")
            .times(3)
        );
        assert_eq!(
            parse("bad-item:no-id,path=/users"),
            Fault::new(FaultKind::BadItem {
                shape: BadItemShape::NoId
            })
            .on_path("/users")
        );
        for (spec, shape) in [
            ("bad-item:null-id", BadItemShape::NullId),
            ("bad-item:not-object", BadItemShape::NotObject),
            ("BAD-ITEM:All", BadItemShape::All),
        ] {
            assert_eq!(parse(spec).kind, FaultKind::BadItem { shape }, "{spec}");
        }
        assert_eq!(
            parse("bad-event:timestamp"),
            Fault::new(FaultKind::BadEvent {
                defect: BadEventDefect::TimestampNotADate
            })
            .on_path("/audit-events")
        );
        assert_eq!(
            parse("bad-event:no-timestamp,times=1").kind,
            FaultKind::BadEvent {
                defect: BadEventDefect::NoTimestamp
            }
        );
        let json = serde_json::to_value(parse("race:delete,path=/users")).unwrap();
        assert_eq!(
            json["kind"],
            serde_json::json!({"type": "pagination_race", "action": "delete"})
        );
        for (spec, expected) in [
            (
                "race,path=/users",
                "`race` needs a variant: `race:delete|insert`",
            ),
            ("race:delete", "`race` needs `path=/users`"),
            (
                "race:delete,path=/sources",
                "`race` works on /users and /destinations only",
            ),
            (
                "race:explode,path=/users",
                "unknown `race` variant `explode`",
            ),
            (
                "race:delete,path=/users,ms=3",
                "`ms` does not apply to `race`",
            ),
            (
                "bad-item:weird",
                "expected one of no-id, null-id, not-object, all",
            ),
            ("bad-event", "`bad-event` needs a variant"),
        ] {
            let message = error(spec);
            assert!(
                message.contains(expected),
                "`{spec}`: `{message}` lacks `{expected}`"
            );
        }
    }

    #[test]
    fn races_fire_on_later_pages_of_their_listing_only() {
        let mut set = FaultSet::new(vec![
            Fault::race(RaceAction::Delete, "/users"),
            Fault::new(FaultKind::BadItem {
                shape: BadItemShape::NoId,
            })
            .on_path("/sources"),
        ]);
        let race = Some(FaultKind::PaginationRace {
            action: RaceAction::Delete,
        });
        assert_eq!(set.select_page("/users", "", true, false), None);
        assert_eq!(set.select_page("/users/u1", "", false, false), None);
        assert_eq!(set.select_page("/users", "", true, true), race);
        // Once by default.
        assert_eq!(set.select_page("/users", "", true, true), None);
        assert_eq!(set.select_page("/sources/s1", "", false, false), None);
        assert!(set.select_page("/sources", "", true, false).is_some());
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "429:ms=2000,path=/users,skip=1,times=3",
            "500",
            "504,path=/groups",
            "slow:ms=3000",
            "malformed,path=/sources",
            "endless-cursor:repeat",
            "endless-cursor,times=1",
            "race:delete,path=/users,times=1",
            "race:insert,path=/destinations,skip=1,times=2",
            "bad-item:no-id,path=/users",
            "bad-item:all",
            "bad-event:timestamp,path=/audit-events",
            "bad-event:no-timestamp,path=/audit-events,times=1",
            "endless-body,path=/users",
            "trickle:ms=50,path=/users,times=2",
        ] {
            let fault = parse(spec);
            assert_eq!(fault.to_string(), spec);
            assert_eq!(parse(&fault.to_string()), fault);
        }
    }

    #[test]
    fn rejects_bad_specs_clearly() {
        let cases = [
            ("", "empty spec"),
            ("404", "not a server error"),
            ("error:status=429", "use `429`"),
            ("teapot", "unknown fault kind `teapot`"),
            ("429:ms=soon", "`ms` must be a non-negative integer"),
            ("429:ms=-1", "`ms` must be a non-negative integer"),
            ("429,ms", "`ms` needs a value"),
            ("slow,repeat", "`repeat` does not apply to `slow`"),
            ("500,ms=3", "`ms` does not apply to `500`"),
            ("malformed,path=sources", "`path` must start with `/`"),
            ("500,times=0", "`times` must be at least 1"),
            ("500,skip=1,skip=2", "`skip` given twice"),
            ("500,,times=1", "empty parameter"),
            ("500,color=red", "unknown parameter `color`"),
            ("endless:repeat=maybe", "`repeat` is a flag"),
            ("endless-body:ms=5", "`ms` does not apply to `endless-body`"),
            ("trickle:ms=0", "`trickle` needs `ms` of at least 1"),
            ("trickle,status=500", "`status` does not apply to `trickle`"),
        ];
        for (spec, expected) in cases {
            let message = error(spec);
            assert!(
                message.contains(expected),
                "`{spec}`: `{message}` lacks `{expected}`"
            );
            assert!(message.contains("invalid fault spec"), "{message}");
        }
    }

    #[test]
    fn serde_form_is_tagged() {
        let fault = Fault::new(FaultKind::RateLimited { ms_before_next: 7 }).on_path("/users");
        let json = serde_json::to_value(&fault).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": {"type": "rate_limited", "ms_before_next": 7},
                               "path": "/users", "skip": 0, "times": null})
        );
        let back: Fault =
            serde_json::from_str(r#"{"kind":{"type":"malformed_json"},"times":2}"#).unwrap();
        assert_eq!(back, Fault::new(FaultKind::MalformedJson).times(2));
    }

    #[test]
    fn path_matching_is_segment_wise() {
        let f = Fault::new(FaultKind::MalformedJson).on_path("/users");
        assert!(f.matches_path("/users"));
        assert!(f.matches_path("/users/abc"));
        assert!(!f.matches_path("/usersx"));
        assert!(!f.matches_path("/groups/x/users"));
        assert!(Fault::new(FaultKind::MalformedJson).matches_path("/anything"));
        assert!(
            Fault::new(FaultKind::MalformedJson)
                .on_path("/")
                .matches_path("/roles")
        );
        assert!(
            Fault::new(FaultKind::MalformedJson)
                .on_path("/groups/")
                .matches_path("/groups/g1/users")
        );
    }

    #[test]
    fn selection_honours_order_skip_and_times() {
        let mut set = FaultSet::new(vec![
            Fault::new(FaultKind::ServerError { status: 500 })
                .on_path("/users")
                .skip(1)
                .times(2),
            Fault::new(FaultKind::EndlessCursor { repeat: false }).on_path("/sources"),
            Fault::new(FaultKind::Slow { delay_ms: 1 }).times(1),
        ]);
        let err = Some(FaultKind::ServerError { status: 500 });
        // First /users request is skipped by the 500 and falls through to the slow fault.
        assert_eq!(
            set.select("/users", "", true),
            Some(FaultKind::Slow { delay_ms: 1 })
        );
        assert_eq!(set.select("/users", "", true), err);
        assert_eq!(set.select("/users/u1", "", false), err);
        assert_eq!(set.select("/users", "", true), None);
        // Endless cursor only applies to paginated lists.
        assert_eq!(set.select("/sources/s1", "", false), None);
        assert_eq!(
            set.select("/sources", "", true),
            Some(FaultKind::EndlessCursor { repeat: false })
        );
        set.clear();
        assert_eq!(set.select("/sources", "", true), None);
    }
}
