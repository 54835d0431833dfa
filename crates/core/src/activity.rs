//! Who has been seen acting in the audit trail, and since when the trail has been read: the
//! `last_acting` and `trail_since` rule variables (docs/RULES.md, *Variables*).
//!
//! Segment's audit trail records actions (admin changes, API calls that change something), not
//! logins or page views: "not seen acting" is not "not logged in". And what segwatch has not
//! read, it cannot vouch for: a user is only "not seen acting for 90 days" once the trail has
//! been read for at least 90 days, so rules compare with [`TrailActivity::read_since`] too, and
//! a poll that did not read the trail (turned off, or not on the workspace's plan) has no
//! `TrailActivity` at all (`trail_since` is `null`).
//!
//! Built once per poll from one grouped query of the stored events (one entry per actor and
//! email, so about one per user and token at 100k users) plus the events the poll itself reads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::trail::AuditEvent;

/// The latest audit event each actor appears in, and since when the trail has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailActivity {
    /// The start of the earliest stored read of the trail (the first poll's look-back
    /// included): events before it were never read. Every later read starts from where the
    /// previous one stopped, so the coverage has no gap from here to the latest read.
    pub read_since: DateTime<Utc>,
    /// By actor as the trail names it: a user id or `public-api-token/<id>`.
    by_actor: HashMap<String, DateTime<Utc>>,
    /// By the actor's email, lowercased.
    by_email: HashMap<String, DateTime<Utc>>,
}

impl TrailActivity {
    /// No actor seen yet; the trail read since `read_since`.
    pub fn new(read_since: DateTime<Utc>) -> Self {
        TrailActivity {
            read_since,
            by_actor: HashMap::new(),
            by_email: HashMap::new(),
        }
    }

    /// Records that `actor` (with `email`, if known) acted at `at`; the latest time is kept.
    pub fn record(&mut self, actor: &str, email: Option<&str>, at: DateTime<Utc>) {
        keep_latest(&mut self.by_actor, actor.to_owned(), at);
        if let Some(email) = email.filter(|e| !e.is_empty()) {
            keep_latest(&mut self.by_email, email.to_ascii_lowercase(), at);
        }
    }

    /// Records every event of `events` (a poll's new events, after the stored ones).
    pub fn record_events(&mut self, events: &[AuditEvent]) {
        for e in events {
            self.record(&e.actor, e.actor_email.as_deref(), e.occurred_at);
        }
    }

    /// Moves `read_since` back to `start` when that is earlier (a poll's own read, when no
    /// earlier read was stored).
    pub fn read_from(&mut self, start: DateTime<Utc>) {
        self.read_since = self.read_since.min(start);
    }

    /// The latest event whose actor is user `user_id`, or whose actor's email is `email`
    /// (ASCII case-insensitive); `None` when the trail read never shows them acting.
    pub fn last_acting(&self, user_id: &str, email: Option<&str>) -> Option<DateTime<Utc>> {
        let by_id = (!user_id.is_empty())
            .then(|| self.by_actor.get(user_id).copied())
            .flatten();
        let by_email = email
            .filter(|e| !e.is_empty())
            .and_then(|e| self.by_email.get(&e.to_ascii_lowercase()).copied());
        by_id.max(by_email)
    }

    /// How many distinct actors (ids) it knows.
    pub fn actors(&self) -> usize {
        self.by_actor.len()
    }
}

fn keep_latest(map: &mut HashMap<String, DateTime<Utc>>, key: String, at: DateTime<Utc>) {
    map.entry(key)
        .and_modify(|t| *t = (*t).max(at))
        .or_insert(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_latest_event_by_id_or_email_counts() {
        let mut a = TrailActivity::new(t("2026-01-01T00:00:00Z"));
        a.record("u1", None, t("2026-02-01T00:00:00Z"));
        a.record("u1", Some("Ann@Acme.io"), t("2026-01-15T00:00:00Z"));
        a.record("u2", Some("bob@acme.io"), t("2026-03-01T00:00:00Z"));
        a.record("public-api-token/T1", None, t("2026-03-02T00:00:00Z"));
        assert_eq!(
            a.last_acting("u1", Some("ann@acme.io")),
            Some(t("2026-02-01T00:00:00Z"))
        );
        // By email alone, case-insensitively (an event that named the user by email only).
        assert_eq!(
            a.last_acting("other-id", Some("ANN@acme.io")),
            Some(t("2026-01-15T00:00:00Z"))
        );
        assert_eq!(a.last_acting("u3", Some("carol@acme.io")), None);
        assert_eq!(a.last_acting("", None), None);
        assert_eq!(a.actors(), 3);
        a.read_from(t("2025-12-31T00:00:00Z"));
        a.read_from(t("2026-06-01T00:00:00Z"));
        assert_eq!(a.read_since, t("2025-12-31T00:00:00Z"));
    }
}
