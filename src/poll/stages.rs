//! The pure stages of a poll, between its one read of the store and its one commit: diff
//! against the base, the audit trail's new events and the attribution of each change, API
//! drift, then the alerts and where they go. They work on [`PollInputs`]; the only store access
//! left is [`PollLookup`], for the stored bodies and event ids the API's answers name.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use segwatch_api::collect::Collection;
use segwatch_core::activity::TrailActivity;
use segwatch_core::alerts::{self, AlertPlan, PlanInput};
use segwatch_core::diff::{self, SnapshotDelta};
use segwatch_core::drift::{self, DriftSummary};
use segwatch_core::model::{KindStatus, Resource, ResourceKind};
use segwatch_core::rules::{self, RuleSet};
use segwatch_core::trail::{self, AuditEvent, Mark, TrailRead};
use segwatch_store::{PollInputs, PollLookup, StoreError};

use super::{Poller, access, flows};
use segwatch_core::access::PolledAccess;
use segwatch_core::flows::stored::FlowFieldsUpdate;

/// One read of the audit trail, as the API returned it.
pub(super) struct TrailWindow {
    /// `startTime` of the window read.
    pub start: DateTime<Utc>,
    /// `endTime` of the window read.
    pub end: DateTime<Utc>,
    /// The events listed.
    pub events: Vec<AuditEvent>,
}

/// What the rules see of this poll besides its resources and changes.
struct PollFacts<'a> {
    /// Evaluation time (the poll's start).
    now: DateTime<Utc>,
    /// The audit events this poll stores for the first time.
    audit_events: &'a [AuditEvent],
    /// The effective access this poll gained and lost.
    access_changes: &'a PolledAccess,
    /// Who the trail shows acting, when this poll read it and a rule reads it.
    trail: Option<&'a TrailActivity>,
}

/// A snapshot ready to commit.
pub(super) struct Planned<'c> {
    /// The versions to store and close, and the changes.
    pub delta: SnapshotDelta<'c>,
    /// What the trail adds (new events, the next mark), when it was read.
    pub trail: Option<TrailRead>,
    /// The alerts to open and the findings to resolve, with their deliveries.
    pub alerts: AlertPlan,
    /// Fields Segment's API started or stopped returning.
    pub api_drift: Vec<DriftSummary>,
    /// Effective access gained and lost, with causes.
    pub access_changes: PolledAccess,
    /// What the snapshot changes of its flows' personal fields, when computed.
    pub flow_fields: Option<FlowFieldsUpdate>,
    /// Time spent selecting new audit events and attributing the changes.
    pub attribution_time: Duration,
    /// Time spent computing the access changes.
    pub access_time: Duration,
    /// Time spent matching the flows' personal fields.
    pub flows_time: Duration,
    /// Time spent planning the alerts.
    pub rules_time: Duration,
}

impl Poller {
    /// Plans the snapshot of `collection` against `inputs`.
    pub(super) fn plan_snapshot<'c>(
        &self,
        mut inputs: PollInputs,
        stored: &PollLookup<'_>,
        collection: &'c Collection,
        trail_window: Option<TrailWindow>,
        now: DateTime<Utc>,
    ) -> Result<Planned<'c>, StoreError> {
        let base = inputs.base;
        let mut untracked: Vec<i64> = inputs
            .current
            .iter()
            .filter(|((kind, _), _)| !self.options.collects(*kind))
            .map(|(_, v)| v.version_id)
            .collect();
        untracked.sort_unstable();
        // What this poll did not read stays as last seen: an unavailable kind entirely, an
        // incomplete kind's resources it did not list. Effective access reads those as they
        // were last seen.
        let mut carried = Vec::new();
        inputs.current.retain(|(kind, id), version| {
            let read = self.options.collects(*kind)
                && match collection.kind_status.get(kind) {
                    None => true,
                    Some(KindStatus::Unavailable { .. }) => false,
                    Some(KindStatus::Incomplete { .. }) => {
                        contains(&collection.resources, *kind, id)
                    }
                };
            if !read
                && self.options.collects(*kind)
                && (access::read_by_access(*kind) || flows::read_by_flows(*kind))
            {
                carried.push((*kind, id.clone(), version.clone()));
            }
            read
        });
        let stored_activity = inputs.trail_activity.take();
        let current = &inputs.current;
        let mut delta = diff::plan(&collection.resources, current, base.is_none(), |id| {
            stored.version_value(id)
        })?;
        delta.untracked = untracked;

        let attribution_started = Instant::now();
        let trail = match trail_window {
            Some(window) => {
                let read = new_events(stored, inputs.audit_mark.as_ref(), window, |actor| {
                    user_email(&collection.resources, current, actor)
                })?;
                // The stored trail is read only when there is something to attribute.
                if let (Some(base), false) = (base, delta.changes.is_empty()) {
                    let (from, stored_events) = stored.events_since_snapshot(base, read.end)?;
                    attribute(from, &stored_events, &read, &mut delta.changes);
                }
                Some(read)
            }
            None => None,
        };
        let attribution_time = attribution_started.elapsed();

        let api_drift = drift::apply(
            &mut delta.changes,
            &collection.resources,
            current,
            trail.is_some(),
            |id| stored.version_value(id),
        )?;

        let access_started = Instant::now();
        let access_changes = access::access_changes(
            collection,
            &carried,
            current,
            &delta,
            base.is_none(),
            stored,
        )?;
        let access_time = access_started.elapsed();

        let flows_started = Instant::now();
        let flow_fields = flows::flow_fields(
            collection,
            &carried,
            inputs.flow_field_patterns.as_deref(),
            &delta,
            &self.flow_patterns,
            stored,
        )?;
        let flows_time = flows_started.elapsed();

        let new_events = trail.as_ref().map_or(&[][..], |t| &t.new_events[..]);
        // `last_acting` and `trail_since` only from a poll that read the trail: what segwatch
        // did not read, it cannot vouch for.
        let activity = match (&trail, &self.rules) {
            (Some(read), Some(rules)) if super::inputs::reads_trail(rules) => {
                let mut activity =
                    stored_activity.unwrap_or_else(|| TrailActivity::new(read.start));
                activity.read_from(read.start);
                activity.record_events(new_events);
                Some(activity)
            }
            _ => None,
        };
        let rules_started = Instant::now();
        let mut alert_plan = match &self.rules {
            Some(rules) => {
                let facts = PollFacts {
                    now,
                    audit_events: new_events,
                    access_changes: &access_changes,
                    trail: activity.as_ref(),
                };
                self.plan_alerts(rules, &inputs, collection, &delta, &facts, stored)?
            }
            None => AlertPlan::default(),
        };
        // A complete poll ends a run of failures: segwatch's own alert resolves with it.
        if let Some(meta) = inputs
            .open_findings
            .iter()
            .find(|a| a.rule_id == alerts::POLLS_FAILING_RULE)
        {
            alert_plan.resolved.push(alerts::ResolvedFinding {
                alert: meta.clone(),
                resolution: alerts::Resolution::Compliant,
            });
        }
        self.route(&mut alert_plan);
        Ok(Planned {
            delta,
            trail,
            alerts: alert_plan,
            api_drift,
            access_changes,
            flow_fields,
            attribution_time,
            access_time,
            flows_time,
            rules_time: rules_started.elapsed(),
        })
    }

    /// Plans this snapshot's alerts: the lifecycle on what changed.
    #[allow(clippy::too_many_arguments)]
    fn plan_alerts(
        &self,
        rules: &RuleSet,
        inputs: &PollInputs,
        collection: &Collection,
        delta: &SnapshotDelta<'_>,
        facts: &PollFacts<'_>,
        stored: &PollLookup<'_>,
    ) -> Result<AlertPlan, StoreError> {
        let (now, audit_events) = (facts.now, facts.audit_events);
        let resources = &collection.resources[..];
        let base = inputs.base;
        let inventory = rules::inventory_if_read(
            rules,
            resources.iter().map(|r| {
                (
                    r.kind,
                    serde_json::from_str(&r.body).expect("resource bodies are JSON we serialised"),
                )
            }),
        );
        // Relationships are indexed only when a rule that reads them will run: a compliance rule
        // (reading `related` makes it run on every poll), or a change rule with a change of its
        // kind to look at.
        let baseline_changes = base.is_none() && self.alert_on_baseline;
        let needs_relations = rules.rules().iter().any(|r| {
            r.enabled
                && r.reads("related")
                && (!r.is_change()
                    || baseline_changes
                    || delta.changes.iter().any(|c| c.change.kind == r.resource))
        });
        let relations =
            needs_relations.then(|| segwatch_core::relations::Relations::build(resources));
        // A kind the base snapshot did not vouch for (not collected, or unavailable since the
        // first poll) starts with a baseline of its own.
        let baseline_kinds: Vec<ResourceKind> = match base {
            Some(_) => self
                .collected_kinds()
                .into_iter()
                .filter(|k| !inputs.known_kinds.contains(k) && collection.is_complete(*k))
                .collect(),
            None => Vec::new(),
        };
        let unread_kinds: Vec<ResourceKind> = collection.kind_status.keys().copied().collect();
        let input = PlanInput {
            baseline_kinds: &baseline_kinds,
            relations: relations.as_ref(),
            rules,
            now,
            resources,
            changes: &delta.changes,
            baseline: base.is_none(),
            alert_on_baseline: self.alert_on_baseline,
            unread_kinds: &unread_kinds,
            open_findings: &inputs.open_findings,
            rule_states: &inputs.rule_states,
            seen_since: &inputs.seen_since,
            inventory,
            audit_events,
            access: Some(facts.access_changes),
            trail: facts.trail,
        };
        alerts::plan(&input, |id| stored.version_value(id))
    }
}

/// What one read of the trail adds: the events not stored before (with actors' emails filled
/// in from the users segwatch knows) and the mark the next poll starts from.
fn new_events(
    stored: &PollLookup<'_>,
    mark: Option<&Mark>,
    TrailWindow { start, end, events }: TrailWindow,
    email_of: impl Fn(&str) -> Option<String>,
) -> Result<TrailRead, StoreError> {
    let events_read = events.len();
    let next_mark = Mark::advance(mark, start, &events);
    let mut failure = None;
    let mut new_events = trail::select_new(events, mark, |id| {
        stored.has_audit_event(id).unwrap_or_else(|e| {
            failure.get_or_insert(e);
            true
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    trail::resolve_emails(&mut new_events, email_of);
    tracing::info!(
        read = events_read,
        new = new_events.len(),
        "read the audit trail"
    );
    Ok(TrailRead {
        start,
        end,
        events_read,
        new_events,
        mark: next_mark,
    })
}

/// Gives each change the latest audit event on its resource since the base snapshot started
/// reading (`from`): the events stored by earlier polls in that window (`stored`, which may
/// hold more: [`trail::attribute`] bounds the window), and this read's new ones.
fn attribute(
    from: DateTime<Utc>,
    stored: &[AuditEvent],
    read: &TrailRead,
    changes: &mut [diff::PlannedChange<'_>],
) {
    if changes.is_empty() {
        return;
    }
    trail::attribute(
        changes.iter_mut().map(|p| &mut p.change),
        stored.iter().chain(&read.new_events),
        from,
        read.end,
    );
}

/// The email of user `id`: in this poll's resources, or (a user removed since) in the last
/// snapshot's.
fn user_email(
    resources: &[Resource],
    current: &HashMap<(ResourceKind, String), diff::CurrentVersion>,
    id: &str,
) -> Option<String> {
    resources
        .binary_search_by(|r| (r.kind, r.id.as_str()).cmp(&(ResourceKind::User, id)))
        .ok()
        .map(|i| resources[i].name.clone())
        .or_else(|| {
            current
                .get(&(ResourceKind::User, id.to_string()))
                .map(|v| v.name.clone())
        })
        .filter(|email| email.contains('@'))
}

/// Whether `resources` (sorted by kind, then id) holds `kind`/`id`.
pub(super) fn contains(resources: &[Resource], kind: ResourceKind, id: &str) -> bool {
    resources
        .binary_search_by(|r| (r.kind, r.id.as_str()).cmp(&(kind, id)))
        .is_ok()
}
