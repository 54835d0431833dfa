//! One poll cycle, in four steps that each touch one thing:
//!
//! 1. the API: `collect` reads the workspace (`fetch` then confirms what vanished from a
//!    list against the base, and reads the audit trail);
//! 2. the store, once: [`segwatch_store::Store::poll_inputs`] reads everything the poll
//!    consults (the base, current versions, known kinds, audit mark, open findings, rule
//!    states...), right after `collect`, since the confirmation needs the base;
//! 3. the pure `stages` on those inputs: diff, attribution, API drift, alerts;
//! 4. one commit of the snapshot, its alerts and their queued deliveries.
//!
//! Delivery follows from the outbox, not from the poll: see `delivery`.
//!
//! The order is what makes a poll all-or-nothing: the snapshot row is created `running` first
//! (so a failed or killed poll leaves a trace, see `failure`), and everything else lands in
//! one transaction at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use segwatch_api::collect::{CollectOptions, Collection, collect};
use segwatch_api::segment::SegmentClient;
use segwatch_core::alerts::{AlertRecord, EvalProblem};
use segwatch_core::diff::ResourceChange;
use segwatch_core::drift::DriftSummary;
use segwatch_core::flows::PersonalPatterns;
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::ResourceKind;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_sinks::Sink;
use segwatch_store::{CommitTarget, PollInputs, PollStats, Store, StoreError};

mod access;
mod delivery;
mod failure;
mod fetch;
mod flows;
mod inputs;
mod outcome;
mod stages;

use failure::Running;
pub use outcome::{ACCESS_CHANGES_KEPT, PollError, PollOutcome};
use outcome::{alert_records, duration_ms};
use stages::TrailWindow;

/// How long a one-shot poll (`segwatch poll`) spends delivering after its snapshot, unless
/// configured (`[delivery] poll_deadline_secs`), before it leaves the rest queued: a sink that
/// never answers must not keep the command, or a cron job, running forever. The daemon
/// delivers in its own task instead.
pub const ONE_SHOT_DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// Polls one workspace into a store.
#[derive(Debug, Clone)]
pub struct Poller {
    client: SegmentClient,
    policy: SecretPolicy,
    options: CollectOptions,
    workspace: String,
    rules: Option<Arc<RuleSet>>,
    alert_on_baseline: bool,
    sinks: Arc<Vec<Sink>>,
    audit_lookback: Option<chrono::Duration>,
    delivery_deadline: Duration,
    /// The other configured workspaces' labels, which must not reach the same Segment
    /// workspace.
    siblings: Vec<String>,
    /// The field-name patterns the flows' personal fields are matched with.
    flow_patterns: PersonalPatterns,
}

impl Poller {
    /// A poller for the workspace labelled `workspace` in the database.
    pub fn new(client: SegmentClient, policy: SecretPolicy, workspace: impl Into<String>) -> Self {
        Poller {
            client,
            policy,
            options: CollectOptions::default(),
            workspace: workspace.into(),
            rules: None,
            alert_on_baseline: false,
            sinks: Arc::new(Vec::new()),
            audit_lookback: None,
            delivery_deadline: ONE_SHOT_DELIVERY_DEADLINE,
            siblings: Vec::new(),
            flow_patterns: PersonalPatterns::default(),
        }
    }

    /// Matches the flows' personal fields with these patterns (`[flows]
    /// personal_field_patterns`; default: the documented list).
    pub fn with_flow_patterns(mut self, patterns: PersonalPatterns) -> Self {
        self.flow_patterns = patterns;
        self
    }

    /// The labels of every configured workspace (this one's is ignored): a poll that finds
    /// its Segment workspace already recorded under one of them fails with
    /// [`PollError::SameSegmentWorkspace`]. Labels only the database knows (a workspace removed
    /// or renamed in the configuration) do not count.
    pub fn with_configured_workspaces(mut self, labels: Vec<String>) -> Self {
        self.siblings = labels
            .into_iter()
            .filter(|l| *l != self.workspace)
            .collect();
        self
    }

    /// How long [`Poller::deliver_queued`] and [`Poller::after_failure`] deliver before leaving the rest
    /// queued (default [`ONE_SHOT_DELIVERY_DEADLINE`]).
    pub fn with_delivery_deadline(mut self, deadline: Duration) -> Self {
        self.delivery_deadline = deadline;
        self
    }

    /// Reads the audit trail at each poll: from where the last complete poll stopped, or, the
    /// first time, from `lookback` ago; stores new events with the snapshot and attributes each
    /// change to its latest event.
    pub fn with_audit_trail(mut self, lookback: Duration) -> Self {
        self.audit_lookback =
            Some(chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::days(365)));
        self
    }

    /// Collects only the kinds `options` selects (default: every kind). Current versions of a
    /// kind turned off are closed at the next poll without a change: segwatch stops vouching
    /// for them, and a kind turned on again starts with its resources added.
    pub fn with_collect(mut self, options: CollectOptions) -> Self {
        self.options = options;
        self
    }

    /// The client this poller reads the API with (its counters feed `/metrics`).
    pub fn client(&self) -> &SegmentClient {
        &self.client
    }

    /// Queues every alert event for the sinks that want it (in the snapshot's transaction);
    /// [`Poller::deliver_queued`] or the daemon's delivery task sends them.
    pub fn with_sinks(mut self, sinks: Arc<Vec<Sink>>) -> Self {
        self.sinks = sinks;
        self
    }

    /// Evaluates `rules` after every complete snapshot. With `alert_on_baseline`, change rules
    /// also see every resource of the first snapshot as added.
    pub fn with_rules(mut self, rules: Arc<RuleSet>, alert_on_baseline: bool) -> Self {
        self.rules = Some(rules);
        self.alert_on_baseline = alert_on_baseline;
        self
    }

    /// Runs one cycle: collects, reads the store once, plans and commits one snapshot, with its
    /// alerts' deliveries queued in the outbox in the same transaction. Sending them is not the
    /// poll's: a one-shot poll follows with [`Poller::deliver_queued`], the daemon's delivery
    /// task sends them on its own, so a slow sink never holds a poll. On error the snapshot is
    /// marked failed and nothing else is written.
    pub async fn poll(&self, store: &mut Store) -> Result<PollOutcome, PollError> {
        let started = Instant::now();
        let now = chrono::Utc::now();
        let requests_before = self.client.stats().requests;
        let workspace_id = store.workspace_id(&self.workspace)?;
        let interrupted = store.mark_interrupted(workspace_id)?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "found polls left running by a stopped process; marked them failed"
            );
        }
        let snapshot_id = store.begin_snapshot(workspace_id)?;
        let running = Running::new(snapshot_id, started, &self.client, requests_before);
        let span =
            tracing::info_span!("poll", workspace = %self.workspace, snapshot = snapshot_id.get());
        let _enter = span.enter();
        tracing::info!("poll started");

        let collected = collect(&self.client, &self.policy, &self.options).await;
        let segment_id = collected.as_ref().ok().map(|c| c.workspace_id.as_str());
        let inputs = match self.read_inputs(store, workspace_id, segment_id) {
            Ok(inputs) => inputs,
            Err(e) => return Err(running.failed_store(store, e)),
        };
        let collected = match collected {
            Ok(mut c) => self
                .confirm(&inputs.known_kinds, &inputs.current, &mut c)
                .await
                .map(|confirmation| (c, confirmation)),
            Err(cause) => Err(cause),
        };
        let (mut collection, confirmation) = match collected {
            Ok(c) => c,
            Err(cause) => {
                running.fail(store, &cause.to_string())?;
                return Err(PollError::Collect { snapshot_id, cause });
            }
        };
        if let Some(other) = self.sibling_in(&inputs, workspace_id) {
            let error = PollError::SameSegmentWorkspace {
                snapshot_id,
                workspace: self.workspace.clone(),
                other,
                segment_id: collection.workspace_id.clone(),
            };
            running.fail(store, &error.to_string())?;
            return Err(error);
        }
        // After the resources, so that every change they show happened before its end.
        let trail_started = Instant::now();
        let trail_window = match self
            .read_trail(inputs.audit_mark.as_ref(), &mut collection)
            .await
        {
            Ok(window) => window,
            Err(cause) => {
                running.fail(store, &cause.to_string())?;
                return Err(PollError::Trail { snapshot_id, cause });
            }
        };
        let trail_time = trail_started.elapsed();
        let fetched = started.elapsed();

        let committed = match self.plan_and_commit(
            store,
            &running,
            workspace_id,
            inputs,
            &collection,
            trail_window,
            confirmation.requests,
            now,
        ) {
            Ok(committed) => committed,
            Err(e) => return Err(running.failed_store(store, e)),
        };
        for p in committed.rule_problems.iter().take(20) {
            tracing::warn!(rule = %p.rule_id, kind = %p.resource_kind, resource = %p.resource_id, error = %p.message,
                "rule could not be evaluated on a resource; it did not fire there");
        }

        let mut resource_counts = BTreeMap::new();
        for r in &collection.resources {
            *resource_counts.entry(r.kind).or_default() += 1;
        }
        let unavailable: Vec<String> = collection
            .kind_status
            .iter()
            .map(|(k, s)| format!("{k} {}", s.label()))
            .collect();
        let stats = committed.stats;
        tracing::info!(
            resources = stats.resource_count,
            changes = committed.changes.len(),
            access_changes = committed.access_changes_total,
            requests = stats.api_requests,
            confirm_requests = confirmation.requests,
            quarantined = collection.quarantine.len(),
            not_read_in_full = %unavailable.join(", "),
            ms = started.elapsed().as_millis() as u64,
            "poll complete"
        );
        Ok(PollOutcome {
            snapshot_id,
            base_snapshot_id: committed.base,
            resource_counts,
            changes: committed.changes,
            api_requests: stats.api_requests,
            duration_ms: duration_ms(started.elapsed()),
            fetch_ms: duration_ms(fetched),
            store_ms: duration_ms(started.elapsed() - fetched),
            rules_ms: duration_ms(committed.rules_time),
            rule_evaluations: committed.rule_evaluations,
            alerts: committed.alerts,
            rule_problems: committed.rule_problems,
            audit_events: committed.audit_events,
            audit_ms: duration_ms(trail_time + committed.attribution_time),
            deliveries: None,
            kind_status: collection.kind_status,
            quarantined: collection.quarantine,
            confirmation,
            api_drift: committed.api_drift,
            access_changes: committed.access_changes,
            access_changes_total: committed.access_changes_total,
            access_ms: duration_ms(committed.access_time),
            flows_ms: duration_ms(committed.flows_time),
        })
    }

    /// Runs the pure stages on `inputs` and commits the snapshot in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn plan_and_commit(
        &self,
        store: &mut Store,
        running: &Running<'_>,
        workspace_id: i64,
        inputs: PollInputs,
        collection: &Collection,
        trail_window: Option<TrailWindow>,
        confirm_requests: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Committed, StoreError> {
        let base = inputs.base;
        let planned = self.plan_snapshot(
            inputs,
            &store.poll_lookup(workspace_id),
            collection,
            trail_window,
            now,
        )?;
        let stats = PollStats {
            resource_count: collection.resources.len(),
            api_requests: running.requests(),
            duration: running.started.elapsed(),
        };
        let target = CommitTarget {
            workspace_id,
            snapshot_id: running.snapshot_id,
            base,
            segment_workspace_id: &collection.workspace_id,
            stats,
            trail: planned.trail.as_ref(),
            kinds: &self.collected_kinds(),
            kind_status: &collection.kind_status,
            confirm_requests,
            quarantine: &collection.quarantine,
            access: Some(&planned.access_changes),
            flow_fields: planned.flow_fields.as_ref(),
        };
        let ids = store.commit_snapshot(&target, &planned.delta, &planned.alerts)?;
        let (alerts, rule_problems, rule_evaluations) =
            alert_records(&self.workspace, running.snapshot_id, planned.alerts, &ids);
        let access_changes = planned
            .access_changes
            .attributed(&planned.delta.changes)
            .take(outcome::ACCESS_CHANGES_KEPT)
            .collect();
        Ok(Committed {
            base,
            changes: planned
                .delta
                .changes
                .into_iter()
                .map(|p| p.change)
                .collect(),
            stats,
            alerts,
            rule_problems,
            rule_evaluations,
            audit_events: planned.trail.as_ref().map(|t| t.new_events.len()),
            api_drift: planned.api_drift,
            access_changes,
            access_changes_total: planned.access_changes.len(),
            attribution_time: planned.attribution_time,
            access_time: planned.access_time,
            flows_time: planned.flows_time,
            rules_time: planned.rules_time,
        })
    }

    /// The resource kinds this poller collects.
    fn collected_kinds(&self) -> Vec<ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .filter(|k| self.options.collects(*k))
            .collect()
    }

    /// The workspace's label in the database.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }
}

/// What a commit wrote, for the outcome.
struct Committed {
    base: Option<SnapshotId>,
    changes: Vec<ResourceChange>,
    stats: PollStats,
    alerts: Vec<AlertRecord>,
    rule_problems: Vec<EvalProblem>,
    rule_evaluations: usize,
    audit_events: Option<usize>,
    api_drift: Vec<DriftSummary>,
    access_changes: Vec<segwatch_core::access::AttributedAccessChange>,
    access_changes_total: usize,
    attribution_time: Duration,
    access_time: Duration,
    flows_time: Duration,
    rules_time: Duration,
}
