//! One poll cycle: collect the workspace, diff it against the last complete snapshot, store both.
//!
//! This module only wires stages together; it owns no logic of its own beyond the order of
//! operations that makes a poll all-or-nothing: the snapshot row is created `running` first (so a
//! failed or killed poll leaves a trace), and everything else lands in one transaction at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use segwatch_api::collect::{
    self, CollectError, CollectOptions, Collection, Confirmation, collect,
};
use segwatch_api::segment::SegmentClient;
use segwatch_api::trail::TrailError;
use segwatch_core::alerts::{
    self, AlertEvent, AlertPlan, AlertRecord, AlertStatus, EvalProblem, PlanInput,
};
use segwatch_core::diff::{self, ResourceChange};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::{KindStatus, KindStatuses, Quarantined, ResourceKind};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::{self, RuleSet};
use segwatch_core::trail::{self, AuditEvent, Mark, TrailRead};
use segwatch_sinks::outbox::{DeliveryReport, deliver_due};
use segwatch_sinks::{Sink, route};
use segwatch_store::{CommitTarget, PollStats, Store, StoreError};

/// Why a poll failed. The snapshot is recorded as failed in every case the database allows.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The workspace could not be read in full.
    #[error("poll (snapshot {snapshot_id}) failed: {cause}")]
    Collect {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// What went wrong (part of the message, so not chained again).
        cause: CollectError,
    },
    /// The audit trail could not be read in full.
    #[error("poll (snapshot {snapshot_id}) failed: {cause}")]
    Trail {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// What went wrong (part of the message, so not chained again).
        cause: TrailError,
    },
    /// Another configured workspace of the same database already watches this Segment
    /// workspace: two labels would record every change, and alert, twice.
    #[error(
        "poll (snapshot {snapshot_id}) failed: workspaces `{workspace}` and `{other}` both \
         reach Segment workspace `{segment_id}`; remove one of the two `[[workspaces]]` \
         entries (or give it the token of another workspace)"
    )]
    SameSegmentWorkspace {
        /// The failed snapshot's id.
        snapshot_id: SnapshotId,
        /// The label being polled.
        workspace: String,
        /// The configured label that already recorded the Segment workspace.
        other: String,
        /// Segment's workspace id, as `GET /` returned it.
        segment_id: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful poll found.
#[derive(Debug, Clone, Serialize)]
pub struct PollOutcome {
    /// The new complete snapshot.
    pub snapshot_id: SnapshotId,
    /// The snapshot it was diffed against; `None` for a baseline.
    pub base_snapshot_id: Option<SnapshotId>,
    /// Resources per kind.
    pub resource_counts: BTreeMap<ResourceKind, usize>,
    /// Changes since the base, sorted by kind and id.
    pub changes: Vec<ResourceChange>,
    /// HTTP requests made.
    pub api_requests: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Of which: reading the API (collect).
    pub fetch_ms: u64,
    /// Of which: diffing and writing the snapshot (rule evaluation included).
    pub store_ms: u64,
    /// Of which: evaluating rules.
    pub rules_ms: u64,
    /// Rule evaluations performed (one rule on one resource or change).
    pub rule_evaluations: usize,
    /// Alerts this poll raised (`fired`, `open`) and findings it resolved (`resolved`).
    pub alerts: Vec<AlertRecord>,
    /// Rules that failed to evaluate on some resource (they did not fire there).
    pub rule_problems: Vec<EvalProblem>,
    /// Audit trail events this poll stored for the first time (`None` when it does not read
    /// the trail).
    pub audit_events: Option<usize>,
    /// Of the wall time: reading the audit trail and attributing the changes.
    pub audit_ms: u64,
    /// What the outbox worker did after the poll (none without sinks).
    pub deliveries: Option<DeliveryReport>,
    /// Kinds this poll could not read in full (unavailable or incomplete), with why; the audit
    /// trail is `audit_event`.
    pub kind_status: KindStatuses,
    /// Items it could not understand, kept in the `quarantine` table (an item already
    /// quarantined by an earlier poll is counted again but stored once).
    pub quarantined: Vec<Quarantined>,
    /// How resources missing from their lists were confirmed gone (or found).
    pub confirmation: Confirmation,
    /// Fields Segment's API started or stopped returning, one per kind and path: recorded in
    /// the changes but raising no alert (see [`segwatch_core::drift`]).
    pub api_drift: Vec<segwatch_core::drift::DriftSummary>,
}

impl PollOutcome {
    /// Whether this was the workspace's first complete snapshot.
    pub fn is_baseline(&self) -> bool {
        self.base_snapshot_id.is_none()
    }

    /// Total resources.
    pub fn resource_count(&self) -> usize {
        self.resource_counts.values().sum()
    }
}

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
        }
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

    /// How long [`Poller::poll`] and [`Poller::after_failure`] deliver before leaving the rest
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

    /// Queues every alert event for the sinks that want it (in the snapshot's transaction) and
    /// sends what is due after each poll.
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

    /// Runs one cycle. On error the snapshot is marked failed and nothing else is written.
    pub async fn poll(&self, store: &mut Store) -> Result<PollOutcome, PollError> {
        let mut outcome = self.snapshot(store).await?;
        outcome.deliveries = self.deliver_within(store, self.delivery_deadline).await?;
        Ok(outcome)
    }

    /// Runs one cycle without delivering: the alerts are queued in the outbox with the
    /// snapshot, and the daemon's delivery task sends them, so a slow sink never holds a poll.
    pub async fn poll_and_queue(&self, store: &mut Store) -> Result<PollOutcome, PollError> {
        self.snapshot(store).await
    }

    /// Collects, diffs, evaluates and commits one snapshot (with its queued deliveries).
    async fn snapshot(&self, store: &mut Store) -> Result<PollOutcome, PollError> {
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
        // Read before this poll's row exists: the mark of the last complete poll.
        let mark = match self.audit_lookback {
            Some(_) => store.audit_mark(workspace_id)?,
            None => None,
        };
        let snapshot_id = store.begin_snapshot(workspace_id)?;
        let span =
            tracing::info_span!("poll", workspace = %self.workspace, snapshot = snapshot_id.get());
        let _enter = span.enter();
        tracing::info!("poll started");

        let requests = || self.client.stats().requests - requests_before;
        let collected = collect(&self.client, &self.policy, &self.options).await;
        // Past `begin_snapshot`, every error must leave the snapshot failed, not running: a
        // running row would only be marked "interrupted" by the next poll.
        let read_base = (|| -> Result<_, StoreError> {
            let base = store.latest_complete(workspace_id)?;
            let current = store.current_versions(workspace_id)?;
            let known = match base {
                Some(base) => store.known_kinds(base)?,
                None => Vec::new(),
            };
            Ok((base, current, known))
        })();
        let (base, mut current, known) = match read_base {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "poll failed; snapshot recorded as failed");
                if let Err(f) =
                    store.fail_snapshot(snapshot_id, &e.to_string(), requests(), started.elapsed())
                {
                    tracing::error!(error = %f, "cannot record the poll as failed");
                }
                return Err(e.into());
            }
        };
        let collected = match collected {
            Ok(mut c) => self
                .confirm(&known, &current, &mut c)
                .await
                .map(|confirmation| (c, confirmation)),
            Err(cause) => Err(cause),
        };
        let (mut collection, confirmation) = match collected {
            Ok(c) => c,
            Err(cause) => {
                let message = cause.to_string();
                tracing::error!(error = %message, "poll failed; snapshot recorded as failed");
                store.fail_snapshot(snapshot_id, &message, requests(), started.elapsed())?;
                return Err(PollError::Collect { snapshot_id, cause });
            }
        };
        let sibling = match self.sibling_with(store, workspace_id, &collection.workspace_id) {
            Ok(sibling) => sibling,
            Err(e) => {
                if let Err(f) =
                    store.fail_snapshot(snapshot_id, &e.to_string(), requests(), started.elapsed())
                {
                    tracing::error!(error = %f, "cannot record the poll as failed");
                }
                return Err(e.into());
            }
        };
        if let Some(other) = sibling {
            let error = PollError::SameSegmentWorkspace {
                snapshot_id,
                workspace: self.workspace.clone(),
                other,
                segment_id: collection.workspace_id.clone(),
            };
            let message = error.to_string();
            tracing::error!(error = %message, "poll failed; snapshot recorded as failed");
            store.fail_snapshot(snapshot_id, &message, requests(), started.elapsed())?;
            return Err(error);
        }

        // After the resources, so that every change they show happened before `end`.
        let trail_started = Instant::now();
        let trail_window = match self.audit_lookback {
            Some(lookback) => {
                let end = chrono::Utc::now();
                let start = mark.as_ref().map_or(end - lookback, |m| m.at);
                match segwatch_api::trail::read(&self.client, &self.policy, start, end).await {
                    Ok((events, mut bad)) => {
                        collection.quarantine.append(&mut bad);
                        Some((start, end, events))
                    }
                    // Not on this workspace's plan: failing every poll would stop the watch
                    // over everything else, so the poll goes on with "actor unknown".
                    Err(TrailError::Api(e)) if e.refusal().is_some() => {
                        let (http_status, reason) = e.refusal().expect("checked just above");
                        tracing::warn!(
                            reason = %reason,
                            "the audit trail is not available to this workspace; changes are \
                             recorded with actor unknown (set [collect] audit_events = false to \
                             stop reading it)"
                        );
                        collection.kind_status.insert(
                            ResourceKind::AuditEvent,
                            KindStatus::Unavailable {
                                http_status,
                                reason,
                                carried: false,
                            },
                        );
                        None
                    }
                    Err(cause) => {
                        let message = cause.to_string();
                        tracing::error!(error = %message, "poll failed; snapshot recorded as failed");
                        store.fail_snapshot(
                            snapshot_id,
                            &message,
                            requests(),
                            started.elapsed(),
                        )?;
                        return Err(PollError::Trail { snapshot_id, cause });
                    }
                }
            }
            None => None,
        };
        let mut audit_time = trail_started.elapsed();

        let fetched = started.elapsed();
        let mut api_drift = Vec::new();
        let result = (|| {
            let mut untracked: Vec<i64> = current
                .iter()
                .filter(|((kind, _), _)| !self.options.collects(*kind))
                .map(|(_, v)| v.version_id)
                .collect();
            untracked.sort_unstable();
            // What this poll did not read stays as last seen: an unavailable kind entirely, an
            // incomplete kind's resources it did not list.
            current.retain(|(kind, id), _| {
                self.options.collects(*kind)
                    && match collection.kind_status.get(kind) {
                        None => true,
                        Some(KindStatus::Unavailable { .. }) => false,
                        Some(KindStatus::Incomplete { .. }) => {
                            contains(&collection.resources, *kind, id)
                        }
                    }
            });
            let mut delta = diff::plan(&collection.resources, &current, base.is_none(), |id| {
                store.version_value(id)
            })?;
            delta.untracked = untracked;
            let attribution_started = Instant::now();
            let trail = match trail_window {
                Some((start, end, events)) => {
                    let read = self.new_events(
                        store,
                        workspace_id,
                        mark.as_ref(),
                        (start, end, events),
                        |actor| user_email(&collection.resources, &current, actor),
                    )?;
                    if let Some(base) = base {
                        crate::stored::attribute_since(
                            store,
                            workspace_id,
                            base,
                            read.end,
                            &read.new_events,
                            delta.changes.iter_mut().map(|p| &mut p.change),
                        )?;
                    }
                    Some(read)
                }
                None => None,
            };
            audit_time += attribution_started.elapsed();
            api_drift = segwatch_core::drift::apply(
                &mut delta.changes,
                &collection.resources,
                &current,
                trail.is_some(),
                |id| store.version_value(id),
            )?;
            let new_events = trail.as_ref().map_or(&[][..], |t| &t.new_events[..]);
            let rules_started = Instant::now();
            let alert_plan = match &self.rules {
                Some(rules) => self.plan_alerts(
                    store,
                    workspace_id,
                    rules,
                    &collection,
                    &delta,
                    (base, &known),
                    now,
                    new_events,
                )?,
                None => AlertPlan::default(),
            };
            let mut alert_plan = alert_plan;
            // A complete poll ends a run of failures: segwatch's own alert resolves with it.
            if let Some(meta) =
                store.open_alert_of_rule(workspace_id, alerts::POLLS_FAILING_RULE)?
            {
                alert_plan.resolved.push(alerts::ResolvedFinding {
                    alert: meta,
                    resolution: alerts::Resolution::Compliant,
                });
            }
            self.route(&mut alert_plan);
            let rules_time = rules_started.elapsed();
            let stats = PollStats {
                resource_count: collection.resources.len(),
                api_requests: requests(),
                duration: started.elapsed(),
            };
            let target = CommitTarget {
                workspace_id,
                snapshot_id,
                base,
                segment_workspace_id: &collection.workspace_id,
                stats,
                trail: trail.as_ref(),
                kinds: &self.collected_kinds(),
                kind_status: &collection.kind_status,
                confirm_requests: confirmation.requests,
                quarantine: &collection.quarantine,
            };
            let ids = store.commit_snapshot(&target, &delta, &alert_plan)?;
            let stored_events = trail.as_ref().map(|t| t.new_events.len());
            let changes: Vec<ResourceChange> =
                delta.changes.into_iter().map(|p| p.change).collect();
            Ok::<_, StoreError>((
                base,
                changes,
                stats,
                alert_records(snapshot_id, alert_plan, &ids),
                (rules_time, stored_events),
            ))
        })();
        let (
            base,
            changes,
            stats,
            (alerts, rule_problems, rule_evaluations),
            (rules_time, audit_events),
        ) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "poll failed; snapshot recorded as failed");
                if let Err(f) =
                    store.fail_snapshot(snapshot_id, &e.to_string(), requests(), started.elapsed())
                {
                    tracing::error!(error = %f, "cannot record the poll as failed");
                }
                return Err(e.into());
            }
        };
        for p in rule_problems.iter().take(20) {
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
        tracing::info!(
            resources = stats.resource_count,
            changes = changes.len(),
            requests = stats.api_requests,
            confirm_requests = confirmation.requests,
            quarantined = collection.quarantine.len(),
            not_read_in_full = %unavailable.join(", "),
            ms = started.elapsed().as_millis() as u64,
            "poll complete"
        );
        Ok(PollOutcome {
            snapshot_id,
            base_snapshot_id: base,
            resource_counts,
            changes,
            api_requests: stats.api_requests,
            duration_ms: duration_ms(started.elapsed()),
            fetch_ms: duration_ms(fetched),
            store_ms: duration_ms(started.elapsed() - fetched),
            rules_ms: duration_ms(rules_time),
            rule_evaluations,
            alerts,
            rule_problems,
            audit_events,
            audit_ms: duration_ms(audit_time),
            deliveries: None,
            kind_status: collection.kind_status,
            quarantined: collection.quarantine,
            confirmation,
            api_drift,
        })
    }

    /// Settles this poll's view of each kind against the base: an unavailable kind is
    /// `carried` when the base vouched for it, and resources the base holds that a complete
    /// kind's list did not return are confirmed gone or put back ([`collect::confirm_missing`]).
    async fn confirm(
        &self,
        known: &[ResourceKind],
        current: &HashMap<(ResourceKind, String), diff::CurrentVersion>,
        collection: &mut Collection,
    ) -> Result<Confirmation, CollectError> {
        for (kind, status) in collection.kind_status.iter_mut() {
            if let KindStatus::Unavailable { carried, .. } = status {
                *carried = known.contains(kind);
            }
        }
        let mut missing: Vec<(ResourceKind, String)> = current
            .keys()
            .filter(|(kind, id)| {
                self.options.collects(*kind)
                    && collection.is_complete(*kind)
                    && known.contains(kind)
                    && !contains(&collection.resources, *kind, id)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(Confirmation::default());
        }
        missing.sort();
        let confirmation =
            collect::confirm_missing(&self.client, &self.policy, collection, &missing).await?;
        tracing::info!(
            missing = confirmation.checked,
            still_there = confirmation.found,
            requests = confirmation.requests,
            "confirmed resources missing from their lists"
        );
        Ok(confirmation)
    }

    /// What one read of the trail adds: the events not stored before (with actors' emails
    /// filled in from the users segwatch knows) and the mark the next poll starts from.
    fn new_events(
        &self,
        store: &Store,
        workspace_id: i64,
        mark: Option<&Mark>,
        (start, end, events): (
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            Vec<AuditEvent>,
        ),
        email_of: impl Fn(&str) -> Option<String>,
    ) -> Result<TrailRead, StoreError> {
        let events_read = events.len();
        let next_mark = Mark::advance(mark, start, &events);
        let mut failure = None;
        let mut new_events = trail::select_new(events, mark, |id| {
            store.has_audit_event(workspace_id, id).unwrap_or_else(|e| {
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

    /// After a failed poll: raises segwatch's own alert when the workspace's polls have failed
    /// for at least `threshold`, if set (once per run of failures; the next complete poll
    /// resolves it),
    /// then sends what the outbox has due (within the delivery deadline), so
    /// deliveries and their retries go on while the API is unreachable.
    pub async fn after_failure(
        &self,
        store: &mut Store,
        threshold: Option<Duration>,
    ) -> Result<(Option<AlertRecord>, Option<DeliveryReport>), StoreError> {
        let raised = self.raise_failing_alert(store, threshold)?;
        Ok((
            raised,
            self.deliver_within(store, self.delivery_deadline).await?,
        ))
    }

    /// The configured workspace other than this one that already recorded `segment_id`.
    fn sibling_with(
        &self,
        store: &Store,
        workspace_id: i64,
        segment_id: &str,
    ) -> Result<Option<String>, StoreError> {
        if self.siblings.is_empty() {
            return Ok(None);
        }
        Ok(store
            .workspaces_with_segment_id(segment_id)?
            .into_iter()
            .find(|(id, name)| *id != workspace_id && self.siblings.contains(name))
            .map(|(_, name)| name))
    }

    /// The first half of [`Poller::after_failure`]: raises (queues) segwatch's own alert when
    /// due, without delivering (the daemon's delivery task does).
    pub fn raise_failing_alert(
        &self,
        store: &mut Store,
        threshold: Option<Duration>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let workspace_id = store.workspace_id(&self.workspace)?;
        let mut raised = None;
        let failing = match threshold {
            Some(_) => store.failing_since(workspace_id)?,
            None => None,
        };
        if let (Some(failing), Some(threshold)) = (failing, threshold) {
            let since = chrono::DateTime::parse_from_rfc3339(&failing.since)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let failing_for = (chrono::Utc::now() - since).to_std().unwrap_or_default();
            if failing_for >= threshold
                && store
                    .open_alert_of_rule(workspace_id, alerts::POLLS_FAILING_RULE)?
                    .is_none()
            {
                let alert = alerts::polls_failing_alert(
                    &self.workspace,
                    store.workspace_segment_id(workspace_id)?.as_deref(),
                    &failing.since,
                    failing_for,
                    &failing.error,
                );
                let mut plan = AlertPlan {
                    opened: vec![alert],
                    ..AlertPlan::default()
                };
                self.route(&mut plan);
                let ids = store.record_alerts(workspace_id, failing.snapshot_id, &plan)?;
                tracing::error!(
                    workspace = %self.workspace,
                    since = %failing.since,
                    "polls have failed for longer than the alert threshold; alert raised"
                );
                let (mut records, _, _) = alert_records(failing.snapshot_id, plan, &ids);
                raised = records.pop();
            }
        }
        Ok(raised)
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

    /// [`Poller::deliver`], given at most `limit`: what is not sent by then stays queued (a
    /// send cut short is not recorded, so it is sent again: at least once) and a warning says
    /// so. A one-shot `segwatch poll` must end even when a sink never answers.
    pub async fn deliver_within(
        &self,
        store: &mut Store,
        limit: Duration,
    ) -> Result<Option<DeliveryReport>, StoreError> {
        match tokio::time::timeout(limit, self.deliver(store)).await {
            Ok(report) => report,
            Err(_) => {
                tracing::warn!(
                    workspace = %self.workspace,
                    limit_secs = limit.as_secs(),
                    "delivery deadline reached; what was not sent stays queued for the next run"
                );
                Ok(None)
            }
        }
    }

    /// The names of the sinks this poller queues deliveries for.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_string()).collect()
    }

    /// Sends what the outbox has due for this workspace to the sinks in `scope` (see
    /// [`segwatch_sinks::outbox::deliver_due_to`]).
    pub async fn deliver_to(
        &self,
        store: &mut Store,
        scope: segwatch_sinks::outbox::SinkScope<'_>,
    ) -> Result<DeliveryReport, StoreError> {
        let workspace_id = store.workspace_id(&self.workspace)?;
        segwatch_sinks::outbox::deliver_due_to(
            store,
            &self.sinks,
            workspace_id,
            chrono::Utc::now(),
            scope,
        )
        .await
    }

    /// Sends what the outbox has due for this workspace (this poll's alerts and earlier
    /// failures). A sink that fails does not fail the poll: its deliveries wait for a retry.
    pub async fn deliver(&self, store: &mut Store) -> Result<Option<DeliveryReport>, StoreError> {
        if self.sinks.is_empty() {
            return Ok(None);
        }
        let workspace_id = store.workspace_id(&self.workspace)?;
        let report = deliver_due(store, &self.sinks, workspace_id, chrono::Utc::now()).await?;
        Ok(Some(report))
    }

    /// Queues each alert event for the sinks that want it.
    fn route(&self, plan: &mut AlertPlan) {
        let mut deliveries = Vec::new();
        let named = |rule_id: &str| -> Vec<String> {
            self.rules
                .as_ref()
                .and_then(|r| r.get(rule_id))
                .map(|r| r.sinks.clone())
                .unwrap_or_default()
        };
        for (i, a) in plan.opened.iter().enumerate() {
            let status = if a.rule_kind == "change" {
                AlertStatus::Fired
            } else {
                AlertStatus::Open
            };
            for sink in route(
                &self.sinks,
                &self.workspace,
                &named(&a.rule_id),
                &a.rule_id,
                a.severity,
                &a.tags,
                status,
            ) {
                deliveries.push((AlertEvent::Opened(i), sink));
            }
        }
        for (i, r) in plan.resolved.iter().enumerate() {
            for sink in route(
                &self.sinks,
                &self.workspace,
                &named(&r.alert.rule_id),
                &r.alert.rule_id,
                r.alert.severity,
                &r.alert.tags,
                AlertStatus::Resolved,
            ) {
                deliveries.push((AlertEvent::Resolved(i), sink));
            }
        }
        plan.deliveries = deliveries;
    }

    /// Reads what the lifecycle needs from the store and plans this snapshot's alerts.
    #[allow(clippy::too_many_arguments)]
    fn plan_alerts(
        &self,
        store: &Store,
        workspace_id: i64,
        rules: &RuleSet,
        collection: &Collection,
        delta: &diff::SnapshotDelta<'_>,
        (base, known): (Option<SnapshotId>, &[ResourceKind]),
        now: chrono::DateTime<chrono::Utc>,
        audit_events: &[AuditEvent],
    ) -> Result<AlertPlan, StoreError> {
        let resources = &collection.resources[..];
        let rule_states = store.rule_states(workspace_id)?;
        let open_findings = store.open_findings(workspace_id)?;
        // Only a rule that must look at unchanged resources needs their age or the inventory.
        let full = alerts::full_rules(rules, &rule_states);
        let seen_since = if full.is_empty() {
            HashMap::new()
        } else {
            store.seen_since(workspace_id)?
        };
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
                .filter(|k| !known.contains(k) && collection.is_complete(*k))
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
            open_findings: &open_findings,
            rule_states: &rule_states,
            seen_since: &seen_since,
            inventory,
            audit_events,
        };
        alerts::plan(&input, |id| store.version_value(id))
    }
}

/// The stored form of what a plan opened and resolved, for output.
fn alert_records(
    snapshot_id: SnapshotId,
    plan: AlertPlan,
    ids: &[AlertId],
) -> (Vec<AlertRecord>, Vec<EvalProblem>, usize) {
    let now = segwatch_core::time::Timestamp::now();
    let mut out = Vec::with_capacity(plan.opened.len() + plan.resolved.len());
    for (a, id) in plan.opened.into_iter().zip(ids) {
        out.push(AlertRecord {
            id: *id,
            status: if a.rule_kind == "change" {
                AlertStatus::Fired
            } else {
                AlertStatus::Open
            },
            rule_id: a.rule_id,
            rule_kind: a.rule_kind.to_string(),
            severity: a.severity,
            title: a.title,
            resource_kind: a.resource_kind,
            resource_id: a.resource_id,
            resource_name: a.resource_name,
            snapshot_id,
            change_id: None,
            opened_at: now,
            resolved_at: None,
            resolved_snapshot_id: None,
            resolution: None,
            summary: a.summary,
            explanation: a.explanation,
            remediation: a.remediation,
            tags: a.tags,
            attribution: a.attribution,
        });
    }
    for r in plan.resolved {
        out.push(AlertRecord {
            status: AlertStatus::Resolved,
            resolved_at: Some(now),
            resolved_snapshot_id: Some(snapshot_id),
            resolution: Some(r.resolution.as_str().to_string()),
            ..r.alert
        });
    }
    (out, plan.problems, plan.evaluations)
}

/// The email of user `id`: in this poll's resources, or (a user removed since) in the last
/// snapshot's.
fn user_email(
    resources: &[segwatch_core::model::Resource],
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

fn duration_ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Whether `resources` (sorted by kind, then id) holds `kind`/`id`.
fn contains(resources: &[segwatch_core::model::Resource], kind: ResourceKind, id: &str) -> bool {
    resources
        .binary_search_by(|r| (r.kind, r.id.as_str()).cmp(&(kind, id)))
        .is_ok()
}
