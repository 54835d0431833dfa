//! The simulated audit trail: every mutation appends the events Segment would record for it
//! (`GET /audit-events` lists them), unless it is applied unaudited.
//!
//! Actors are workspace owners (a user id, with `actorEmail` on about half the events, as the
//! newer API sends it) or one of a few API tokens, named by id only (`public-api-token/…`): the
//! token itself never appears in an event.

use chrono::{DateTime, SecondsFormat, Utc};
use fastrand::Rng;
use serde::Serialize;

use super::generate::{self, WORKSPACE_OWNER};
use super::state::WorkspaceState;

/// What a mutation did to one resource, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Touched {
    pub(crate) event_type: &'static str,
    pub(crate) resource_type: &'static str,
    pub(crate) resource_id: String,
    pub(crate) resource_name: String,
}

impl Touched {
    pub(crate) fn new(
        event_type: &'static str,
        resource_type: &'static str,
        resource_id: impl Into<String>,
        resource_name: impl Into<String>,
    ) -> Touched {
        Touched {
            event_type,
            resource_type,
            resource_id: resource_id.into(),
            resource_name: resource_name.into(),
        }
    }
}

/// One event, serialised as `AuditEventV1`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `events/<number>`.
    pub id: String,
    /// ISO-8601, UTC, milliseconds.
    pub timestamp: String,
    /// E.g. `User Policy Updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// A user id or `public-api-token/<id>`.
    pub actor: String,
    /// The actor's email, on some events by users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    /// The resource affected.
    pub resource_id: String,
    /// Its kind, e.g. `user`, `source`.
    pub resource_type: String,
    /// Its name.
    pub resource_name: String,
    #[serde(skip)]
    at: DateTime<Utc>,
}

/// The audit trail: events in the order they happened.
pub(crate) struct AuditLog {
    events: Vec<AuditEvent>,
    next: u64,
    rng: Rng,
    tokens: Vec<String>,
}

impl AuditLog {
    pub(crate) fn new(seed: u64) -> AuditLog {
        let mut rng = Rng::with_seed(seed ^ 0x0a0d_17e7_5eed_0001);
        let tokens = (0..3)
            .map(|_| {
                let id: String = (0..8).map(|_| rng.alphanumeric()).collect();
                format!("public-api-token/{id}")
            })
            .collect();
        AuditLog {
            events: Vec::new(),
            next: 145_876_976,
            rng,
            tokens,
        }
    }

    /// Appends one event per touched resource, all by one actor, stamped now.
    pub(crate) fn record(&mut self, st: &WorkspaceState, touched: Vec<Touched>) {
        if touched.is_empty() {
            return;
        }
        let (actor, actor_email) = self.actor(st);
        self.record_by(actor, actor_email, touched);
    }

    /// Appends one event per touched resource, all by `actor`, stamped now.
    pub(crate) fn record_by(
        &mut self,
        actor: String,
        actor_email: Option<String>,
        touched: Vec<Touched>,
    ) {
        if touched.is_empty() {
            return;
        }
        let at = Utc::now();
        for t in touched {
            self.events.push(AuditEvent {
                id: format!("events/{}", self.next),
                timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
                event_type: t.event_type.to_owned(),
                actor: actor.clone(),
                actor_email: actor_email.clone(),
                resource_id: t.resource_id,
                resource_type: t.resource_type.to_owned(),
                resource_name: t.resource_name,
                at,
            });
            self.next += 1;
        }
    }

    /// A workspace owner (found by random probing, so large workspaces stay cheap) or a token.
    fn actor(&mut self, st: &WorkspaceState) -> (String, Option<String>) {
        if !st.users.is_empty() && self.rng.u32(..10) < 6 {
            let ws = st.workspace.id.as_str();
            for _ in 0..64 {
                let user = generate::pick(&mut self.rng, &st.users);
                let owner = user
                    .permissions
                    .iter()
                    .any(|p| p.role_name == WORKSPACE_OWNER && p.is_workspace_wide(ws));
                if owner {
                    let email = self.rng.bool().then(|| user.email.clone());
                    return (user.id.clone(), email);
                }
            }
        }
        (generate::pick(&mut self.rng, &self.tokens).clone(), None)
    }

    /// Events matching the filters, newest first.
    pub(crate) fn query(&self, filter: &Filter) -> Vec<&AuditEvent> {
        self.events
            .iter()
            .rev()
            .filter(|e| filter.start.is_none_or(|s| e.at >= s))
            .filter(|e| e.at <= filter.end)
            .filter(|e| {
                filter
                    .resource_id
                    .as_deref()
                    .is_none_or(|r| e.resource_id == r)
            })
            .filter(|e| {
                filter
                    .resource_type
                    .as_deref()
                    .is_none_or(|t| e.resource_type.eq_ignore_ascii_case(t))
            })
            .collect()
    }

    /// Every event so far, oldest first.
    pub(crate) fn events(&self) -> &[AuditEvent] {
        &self.events
    }
}

/// The filters of `GET /audit-events`.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) resource_id: Option<String>,
    pub(crate) resource_type: Option<String>,
}
