//! Segment's audit trail: read incrementally at each poll, and matched to the changes the poll
//! found, so each change says who made it.
//!
//! - `segwatch_api::trail::read` pages through `GET /audit-events` between two instants;
//! - [`Mark`] is the high-water mark a complete poll leaves: the latest event timestamp read and
//!   the ids of the events at that instant; the next poll reads from there (inclusive) and
//!   skips those ids, so pages that overlap store nothing twice;
//! - [`attribute`] gives each change the latest event on the same resource between the two
//!   snapshots (with [`CLOCK_SKEW`] of margin on both sides).
//!
//! Reading is the API crate's; everything here is pure.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::diff::ResourceChange;
use crate::model::{Attribution, ResourceKind};
use crate::redact::SecretPolicy;

/// The audit trail's list endpoint.
pub const PATH: &str = "/audit-events";

/// Margin on both sides of the interval between two snapshots when matching events to changes:
/// Segment's clock and ours may disagree, and an event may be stamped just before or after the
/// moment a poll read the resource.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

/// One audit trail event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Segment's id, e.g. `events/145876976`.
    pub id: String,
    /// When it happened (the event's `timestamp`).
    pub occurred_at: DateTime<Utc>,
    /// Its type, e.g. `User Policy Updated`.
    pub event_type: String,
    /// A user id, or a token's id (`public-api-token/…`).
    pub actor: String,
    /// `actorEmail` when the API sends it, else the email of the user `actor` names, if known.
    pub actor_email: Option<String>,
    /// The resource it affected.
    pub resource_id: String,
    /// The kind of that resource, in Segment's words (`function`, `source`, …).
    pub resource_type: String,
    /// The resource's name.
    pub resource_name: String,
    /// The event as the API returned it, canonical JSON (secret-looking fields fingerprinted).
    pub body: String,
}

impl AuditEvent {
    /// What a change gets when this event is its latest match.
    pub fn attribution(&self) -> Attribution {
        Attribution {
            actor: Some(self.actor.clone()),
            actor_email: self.actor_email.clone(),
            event_type: Some(self.event_type.clone()),
            event_id: Some(self.id.clone()),
        }
    }
}

/// Where the next read of the trail starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The latest event timestamp read so far (the start of the first window when none was).
    pub at: DateTime<Utc>,
    /// Ids of the events read at exactly `at`.
    pub ids: Vec<String>,
}

impl Mark {
    /// The mark after reading `events`, from the previous mark (or, for a first read, the
    /// window's start).
    pub fn advance(previous: Option<&Mark>, start: DateTime<Utc>, events: &[AuditEvent]) -> Mark {
        let mut mark = previous.cloned().unwrap_or(Mark {
            at: start,
            ids: Vec::new(),
        });
        for e in events {
            if e.occurred_at > mark.at {
                mark.at = e.occurred_at;
                mark.ids.clear();
            }
            if e.occurred_at == mark.at && !mark.ids.contains(&e.id) {
                mark.ids.push(e.id.clone());
            }
        }
        mark.ids.sort();
        mark
    }
}

/// One poll's read of the trail, written with its snapshot.
#[derive(Debug, Clone)]
pub struct TrailRead {
    /// `startTime` of the window read.
    pub start: DateTime<Utc>,
    /// `endTime` of the window read.
    pub end: DateTime<Utc>,
    /// Events the API listed.
    pub events_read: usize,
    /// Those not stored before, sorted by time then id: stored with the snapshot.
    pub new_events: Vec<AuditEvent>,
    /// The mark the next poll starts from.
    pub mark: Mark,
}

/// An instant as segwatch stores and sends it: RFC 3339 UTC with milliseconds.
pub fn format_time(t: DateTime<Utc>) -> String {
    crate::time::Timestamp::from(t).to_string()
}

/// Reads one `AuditEventV1`. Only `id` and `timestamp` are required: without them an event
/// can be neither deduplicated nor placed in time; other missing fields are stored empty.
pub fn parse_event(item: Value, policy: &SecretPolicy) -> Result<AuditEvent, String> {
    let (id, occurred_at) = identify(&item)?;
    Ok(event_from(item, id, occurred_at, policy))
}

/// An event's id and time, or what stops it from having them. The event itself is not quoted:
/// it is quarantined whole, after redaction.
pub fn identify(item: &Value) -> Result<(String, DateTime<Utc>), String> {
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    if !item.is_object() {
        return Err(format!(
            "is {}, expected an object",
            crate::canonical::kind_of(item)
        ));
    }
    let id = text("id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "has no string `id`".to_owned())?;
    let timestamp = text("timestamp").ok_or_else(|| format!("`{id}` has no string `timestamp`"))?;
    let occurred_at = DateTime::parse_from_rfc3339(timestamp)
        .map_err(|e| format!("`{id}` has a timestamp `{timestamp}` that is not ISO-8601: {e}"))?
        .with_timezone(&Utc);
    Ok((id.to_owned(), occurred_at))
}

/// The stored form of an event [`identify`] accepted.
pub fn event_from(
    mut item: Value,
    id: String,
    occurred_at: DateTime<Utc>,
    policy: &SecretPolicy,
) -> AuditEvent {
    let text = |item: &Value, key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    policy.redact(ResourceKind::AuditEvent, &mut item);
    let body = crate::canonical::canonicalize(item);
    AuditEvent {
        event_type: text(&body, "type").unwrap_or_default(),
        actor: text(&body, "actor").unwrap_or_default(),
        actor_email: text(&body, "actorEmail").filter(|e| !e.is_empty()),
        resource_id: text(&body, "resourceId").unwrap_or_default(),
        resource_type: text(&body, "resourceType").unwrap_or_default(),
        resource_name: text(&body, "resourceName").unwrap_or_default(),
        body: serde_json::to_string(&body).expect("a JSON value always serialises"),
        id,
        occurred_at,
    }
}

/// The events of `read` to store: not among the mark's ids, not listed twice, not already
/// `known` (stored by an earlier poll); sorted by time, then id.
pub fn select_new(
    read: Vec<AuditEvent>,
    mark: Option<&Mark>,
    mut known: impl FnMut(&str) -> bool,
) -> Vec<AuditEvent> {
    let at_mark: HashSet<&str> = mark
        .map(|m| m.ids.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    let mut out: Vec<AuditEvent> = read
        .into_iter()
        .filter(|e| !at_mark.contains(e.id.as_str()))
        .filter(|e| seen.insert(e.id.clone()))
        .filter(|e| !known(&e.id))
        .collect();
    out.sort_by(|a, b| order(a).cmp(&order(b)));
    out
}

/// Fills in `actor_email` of events whose actor is a user `email_of` knows.
pub fn resolve_emails(events: &mut [AuditEvent], email_of: impl Fn(&str) -> Option<String>) {
    for e in events.iter_mut().filter(|e| e.actor_email.is_none()) {
        e.actor_email = email_of(&e.actor);
    }
}

/// Attributes each change to the latest event on the same resource with a timestamp in
/// `[from - CLOCK_SKEW, to + CLOCK_SKEW]`: `from` is when the base snapshot started reading,
/// `to` when this poll finished reading the trail. An event matches by `resourceId`; an invite
/// (identified by its email) or a label (`key:value`) also by `resourceName`. Changes no event
/// matches keep an unknown attribution.
pub fn attribute<'c, 'e>(
    changes: impl IntoIterator<Item = &'c mut ResourceChange>,
    events: impl IntoIterator<Item = &'e AuditEvent>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let (from, to) = (from - CLOCK_SKEW, to + CLOCK_SKEW);
    let mut by_id: HashMap<&str, &AuditEvent> = HashMap::new();
    let mut by_name: HashMap<String, &AuditEvent> = HashMap::new();
    let later =
        |new: &AuditEvent, old: Option<&&AuditEvent>| old.is_none_or(|o| order(new) > order(o));
    for e in events {
        if e.occurred_at < from || e.occurred_at > to {
            continue;
        }
        if later(e, by_id.get(e.resource_id.as_str())) {
            by_id.insert(&e.resource_id, e);
        }
        let name = e.resource_name.to_lowercase();
        if later(e, by_name.get(&name)) {
            by_name.insert(name, e);
        }
    }
    for change in changes {
        let by_its_id = by_id.get(change.resource_id.as_str()).copied();
        let by_its_name = match change.kind {
            ResourceKind::Invite | ResourceKind::Label => {
                by_name.get(&change.resource_id.to_lowercase()).copied()
            }
            _ => None,
        };
        let best = match (by_its_id, by_its_name) {
            (Some(a), Some(b)) => Some(if order(b) > order(a) { b } else { a }),
            (a, b) => a.or(b),
        };
        change.attribution = best.map(AuditEvent::attribution).unwrap_or_default();
    }
}

/// Events in time order; at the same instant, by id (numeric ids by value: `events/9` before
/// `events/10`).
fn order(e: &AuditEvent) -> (DateTime<Utc>, usize, &str) {
    (e.occurred_at, e.id.len(), e.id.as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diff::ChangeOp;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn event(id: &str, ts: &str, resource: &str, actor: &str) -> AuditEvent {
        parse_event(
            json!({"id": id, "timestamp": ts, "type": "User Policy Updated", "actor": actor,
                   "resourceId": resource, "resourceType": "user", "resourceName": resource}),
            &SecretPolicy::default(),
        )
        .unwrap()
    }

    fn change(kind: ResourceKind, id: &str) -> ResourceChange {
        ResourceChange {
            kind,
            resource_id: id.into(),
            name: id.into(),
            op: ChangeOp::Modified,
            fields: Vec::new(),
            text_diff: String::new(),
            attribution: Attribution::default(),
        }
    }

    #[test]
    fn events_parse_leniently_but_need_an_id_and_a_time() {
        let e = parse_event(
            json!({"id": "events/1", "timestamp": "2026-03-04T21:29:22Z", "type": "Source Modified",
                   "actor": "public-api-token/TJ7z8cg6", "resourceId": "s1", "extra": {"n": 1},
                   "apiToken": "clear-secret"}),
            &SecretPolicy::default(),
        )
        .unwrap();
        assert_eq!(e.occurred_at, at("2026-03-04T21:29:22Z"));
        assert_eq!((e.resource_type.as_str(), e.actor_email), ("", None));
        assert!(e.body.contains("\"extra\":{\"n\":1}"), "{}", e.body);
        assert!(!e.body.contains("clear-secret"), "{}", e.body);
        let p = SecretPolicy::default();
        assert!(parse_event(json!({"timestamp": "2026-03-04T21:29:22Z"}), &p).is_err());
        assert!(parse_event(json!({"id": "events/2"}), &p).is_err());
        assert!(parse_event(json!({"id": "events/2", "timestamp": "yesterday"}), &p).is_err());
    }

    #[test]
    fn the_mark_keeps_the_latest_instant_and_its_ids() {
        let start = at("2026-03-01T00:00:00Z");
        let first = Mark::advance(None, start, &[]);
        assert_eq!(
            first,
            Mark {
                at: start,
                ids: vec![]
            }
        );
        let events = [
            event("events/3", "2026-03-01T10:00:00Z", "u1", "a"),
            event("events/5", "2026-03-01T11:00:00Z", "u1", "a"),
            event("events/4", "2026-03-01T11:00:00Z", "u2", "a"),
        ];
        let mark = Mark::advance(Some(&first), start, &events);
        assert_eq!(mark.at, at("2026-03-01T11:00:00Z"));
        assert_eq!(mark.ids, vec!["events/4", "events/5"]);
        // Another event at the same instant joins the ids; nothing older moves the mark back.
        let more = [
            event("events/6", "2026-03-01T11:00:00Z", "u3", "a"),
            event("events/1", "2026-03-01T09:00:00Z", "u3", "a"),
        ];
        let next = Mark::advance(Some(&mark), start, &more);
        assert_eq!(next.ids, vec!["events/4", "events/5", "events/6"]);
        assert_eq!(next.at, mark.at);
    }

    #[test]
    fn overlapping_reads_select_each_event_once() {
        let mark = Mark {
            at: at("2026-03-01T11:00:00Z"),
            ids: vec!["events/5".into()],
        };
        let read = vec![
            event("events/5", "2026-03-01T11:00:00Z", "u1", "a"),
            event("events/7", "2026-03-01T12:00:00Z", "u1", "a"),
            event("events/7", "2026-03-01T12:00:00Z", "u1", "a"),
            event("events/6", "2026-03-01T11:00:00Z", "u1", "a"),
            event("events/2", "2026-03-01T11:00:00Z", "u1", "a"),
        ];
        let new = select_new(read, Some(&mark), |id| id == "events/2");
        let ids: Vec<&str> = new.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, vec!["events/6", "events/7"]);
    }

    #[test]
    fn the_latest_event_on_the_resource_in_the_window_wins() {
        let from = at("2026-03-01T10:00:00Z");
        let to = at("2026-03-01T11:00:00Z");
        let events = [
            event("events/1", "2026-03-01T10:30:00Z", "u1", "alice"),
            event("events/2", "2026-03-01T10:45:00Z", "u1", "bob"),
            // Within the skew after `to`: still this change's.
            event("events/3", "2026-03-01T11:01:00Z", "u2", "carol"),
            // Outside the window on either side.
            event("events/4", "2026-03-01T09:00:00Z", "u3", "dave"),
            event("events/5", "2026-03-01T12:00:00Z", "u3", "erin"),
            event("events/6", "2026-03-01T10:50:00Z", "Pat@Acme.io", "frank"),
        ];
        let mut changes = vec![
            change(ResourceKind::User, "u1"),
            change(ResourceKind::User, "u2"),
            change(ResourceKind::User, "u3"),
            change(ResourceKind::Invite, "pat@acme.io"),
            change(ResourceKind::User, "pat@acme.io"),
        ];
        attribute(&mut changes, &events, from, to);
        let actors: Vec<Option<&str>> = changes
            .iter()
            .map(|c| c.attribution.actor.as_deref())
            .collect();
        assert_eq!(
            actors,
            vec![Some("bob"), Some("carol"), None, Some("frank"), None]
        );
        let a = &changes[0].attribution;
        assert_eq!(a.event_id.as_deref(), Some("events/2"));
        assert_eq!(a.describe(), "by bob (User Policy Updated)");
        assert_eq!(changes[2].attribution.describe(), "actor unknown");
    }

    #[test]
    fn user_actors_resolve_to_emails() {
        let mut events = vec![
            event("events/1", "2026-03-01T10:30:00Z", "s1", "u1"),
            event(
                "events/2",
                "2026-03-01T10:30:00Z",
                "s1",
                "public-api-token/T1",
            ),
        ];
        resolve_emails(&mut events, |id| {
            (id == "u1").then(|| "alice@acme.io".into())
        });
        assert_eq!(events[0].actor_email.as_deref(), Some("alice@acme.io"));
        assert_eq!(events[1].actor_email, None);
    }
}
