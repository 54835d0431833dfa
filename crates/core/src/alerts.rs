//! The alert lifecycle: what one snapshot opens, repeats not, and resolves.
//!
//! Pure planning, no I/O: [`plan`] takes the rules, the new snapshot's resources and changes,
//! the open findings and each rule's last fingerprint, and returns an [`AlertPlan`] that the
//! store writes in the same transaction as the snapshot, so an alert is never lost or doubled
//! by a crash between the two.
//!
//! - Compliance findings are stateful per (rule, resource): opened when the resource becomes
//!   non-compliant, left alone while it stays so, resolved when it becomes compliant, is removed,
//!   is exempted, or its rule is removed; a regression opens a new finding.
//! - Change alerts are one per (rule, change).
//! - Work is proportional to change: a compliance rule is evaluated on every resource of its kind
//!   only when it is new, edited or time-dependent; otherwise only on added and modified
//!   resources.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::ids::{AlertId, SnapshotId};
use crate::time::Timestamp;

use crate::diff::{ChangeOp, PlannedChange};
use crate::drift::{is_drift_only, real_fields};
use crate::model::{Attribution, Resource, ResourceKind};
use crate::rules::{ChangeFacts, Evaluator, Outcome, Rule, RuleSet, Severity, Subject, Verdict};
use crate::trail::AuditEvent;

/// Status of a stored alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// A change alert: an event, never resolved.
    Fired,
    /// A compliance finding still in force.
    Open,
    /// A compliance finding that cleared.
    Resolved,
}

impl AlertStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Fired => "fired",
            AlertStatus::Open => "open",
            AlertStatus::Resolved => "resolved",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AlertStatus> {
        match s {
            "fired" => Some(AlertStatus::Fired),
            "open" => Some(AlertStatus::Open),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// Why a finding was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The resource now satisfies the rule.
    Compliant,
    /// The resource is gone.
    Removed,
    /// An exception now covers the resource.
    Exempted,
    /// The rule was edited and no longer applies to the resource.
    RuleChanged,
    /// The rule was removed or disabled.
    RuleRemoved,
}

impl Resolution {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Compliant => "compliant",
            Resolution::Removed => "removed",
            Resolution::Exempted => "exempted",
            Resolution::RuleChanged => "rule_changed",
            Resolution::RuleRemoved => "rule_removed",
        }
    }
}

/// A stored alert, as the store returns it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    /// Row id.
    pub id: AlertId,
    /// The rule that raised it.
    pub rule_id: String,
    /// `change` or `compliance`.
    pub rule_kind: String,
    /// Severity copied from the rule.
    pub severity: Severity,
    /// Title copied from the rule.
    pub title: String,
    /// Kind of the resource.
    pub resource_kind: ResourceKind,
    /// Id of the resource.
    pub resource_id: String,
    /// Display name of the resource.
    pub resource_name: String,
    /// Snapshot that raised it.
    pub snapshot_id: SnapshotId,
    /// The change row of a change alert.
    pub change_id: Option<i64>,
    /// Fired, open or resolved.
    pub status: AlertStatus,
    /// When it was raised.
    pub opened_at: Timestamp,
    /// When it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// Snapshot that resolved it.
    pub resolved_snapshot_id: Option<SnapshotId>,
    /// Why it was resolved.
    pub resolution: Option<String>,
    /// One-line summary.
    pub summary: String,
    /// What the condition read.
    pub explanation: Value,
    /// How to fix it.
    pub remediation: String,
    /// Framework tags copied from the rule.
    pub tags: Vec<String>,
    /// Who made the change the alert is about (`actor`, `actor_email`, `event_type`,
    /// `event_id`), from the audit trail; all null when unknown or not about a change.
    #[serde(flatten)]
    pub attribution: Attribution,
    /// The configured name of the workspace it is about.
    pub workspace: String,
}

impl AlertRecord {
    /// The identity this alert keeps across its lifecycle, for receivers that track findings
    /// (PagerDuty's `dedup_key`, a Jira label, OCSF `finding_info.uid`): for a compliance
    /// finding, one per (workspace, rule, resource), so a finding that resolves and re-opens
    /// keeps it; for a change alert, one per alert. `segwatch-` and 32 hex digits of SHA-256.
    pub fn finding_uid(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        if self.rule_kind == "change" {
            h.update(format!("{}\0alert\0{}", self.workspace, self.id));
        } else {
            h.update(format!(
                "{}\0{}\0{}\0{}",
                self.workspace,
                self.rule_id,
                self.resource_kind.as_str(),
                self.resource_id
            ));
        }
        let digest = h.finalize();
        let mut out = String::with_capacity(41);
        out.push_str("segwatch-");
        for b in &digest[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// An alert to insert.
#[derive(Debug, Clone, Serialize)]
pub struct NewAlert {
    /// The rule that fired.
    pub rule_id: String,
    /// `change` or `compliance`.
    pub rule_kind: &'static str,
    /// Severity of the rule.
    pub severity: Severity,
    /// Title of the rule.
    pub title: String,
    /// Kind of the resource.
    pub resource_kind: ResourceKind,
    /// Id of the resource.
    pub resource_id: String,
    /// Display name of the resource.
    pub resource_name: String,
    /// Index into the snapshot's planned changes, for change alerts of recorded changes.
    pub change_index: Option<usize>,
    /// One-line summary.
    pub summary: String,
    /// What the condition read.
    pub explanation: Value,
    /// How to fix it.
    pub remediation: String,
    /// Framework tags.
    pub tags: Vec<String>,
    /// Who made the change: a change alert's from its change, a finding's from the change that
    /// made the resource non-compliant, an audit-event alert's from its event.
    #[serde(flatten)]
    pub attribution: Attribution,
}

/// A finding to resolve.
#[derive(Debug, Clone)]
pub struct ResolvedFinding {
    /// The open finding.
    pub alert: AlertRecord,
    /// Why.
    pub resolution: Resolution,
}

/// An open finding whose resource changed in a poll and still fails its rule: the finding
/// stays open (no new alert); sinks that track findings hear of the change.
#[derive(Debug, Clone)]
pub struct UpdatedFinding {
    /// The open finding.
    pub alert: AlertRecord,
    /// The rule's summary of the resource as it is now.
    pub summary: String,
    /// What the condition read now.
    pub explanation: Value,
    /// Who made the change.
    pub attribution: Attribution,
    /// Index into the snapshot's planned changes: the change that modified the resource.
    pub change_index: usize,
}

/// A rule that could not be evaluated on a resource (it never fires; the finding state is kept).
#[derive(Debug, Clone, Serialize)]
pub struct EvalProblem {
    /// The rule.
    pub rule_id: String,
    /// The resource kind.
    pub resource_kind: ResourceKind,
    /// The resource id.
    pub resource_id: String,
    /// The evaluation error.
    pub message: String,
}

/// The rule id of segwatch's own alert that a workspace's polls keep failing. Rule files cannot
/// use it: their ids allow no `:`.
pub const POLLS_FAILING_RULE: &str = "segwatch:polls-failing";

/// Whether an alert is segwatch's own (about segwatch, not the workspace): such alerts are
/// raised and resolved by the poll outcome and go to every sink that takes their severity.
pub fn is_meta(rule_id: &str) -> bool {
    rule_id.starts_with("segwatch:")
}

/// The meta-alert raised when `workspace`'s polls have failed since `since` for `failing_for`,
/// the last time with `error`. It is a finding on the workspace: it stays open (and is not
/// repeated) until a poll completes, which resolves it.
pub fn polls_failing_alert(
    workspace: &str,
    segment_id: Option<&str>,
    since: &str,
    failing_for: std::time::Duration,
    error: &str,
) -> NewAlert {
    let minutes = failing_for.as_secs() / 60;
    NewAlert {
        rule_id: POLLS_FAILING_RULE.to_string(),
        rule_kind: "compliance",
        severity: Severity::High,
        title: "segwatch cannot poll the workspace".to_string(),
        resource_kind: ResourceKind::Workspace,
        resource_id: segment_id.unwrap_or(workspace).to_string(),
        resource_name: workspace.to_string(),
        change_index: None,
        summary: format!(
            "Polls of workspace `{workspace}` have failed for {minutes} min (since {since}): {error}"
        ),
        explanation: serde_json::json!({
            "failing_since": since,
            "failing_for_secs": failing_for.as_secs(),
            "last_error": error,
        }),
        remediation: "Changes to the workspace are not being watched. Check the last error: a \
            401/403 means the token was revoked or lost Workspace Owner (create a new token and \
            reload with SIGHUP); a network or 5xx error points at connectivity or a Segment \
            outage. `segwatch snapshots` lists recent polls and their errors."
            .to_string(),
        tags: vec!["segwatch".to_string()],
        attribution: Attribution::default(),
    }
}

/// An alert event that can be delivered: an inserted alert, or a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEvent {
    /// `opened[i]` of the plan (a change alert or a new finding).
    Opened(usize),
    /// `resolved[i]` of the plan.
    Resolved(usize),
    /// `updated[i]` of the plan: an open finding whose resource changed and still fails.
    Updated(usize),
}

/// Everything one snapshot does to alerts.
#[derive(Debug, Default)]
pub struct AlertPlan {
    /// Deliveries to queue in the outbox: which event goes to which sink.
    pub deliveries: Vec<(AlertEvent, String)>,
    /// Alerts to insert: change alerts (`fired`) and new findings (`open`).
    pub opened: Vec<NewAlert>,
    /// Findings to resolve.
    pub resolved: Vec<ResolvedFinding>,
    /// Open findings whose resource changed in this poll and still fails the rule.
    pub updated: Vec<UpdatedFinding>,
    /// Fingerprints of every enabled rule, to record.
    pub rule_states: Vec<(String, String)>,
    /// Rules no longer enabled, whose state is dropped.
    pub dropped_rules: Vec<String>,
    /// Evaluation errors.
    pub problems: Vec<EvalProblem>,
    /// Rule evaluations performed (one rule on one subject).
    pub evaluations: usize,
}

/// What [`plan`] needs to know about the snapshot and the store.
pub struct PlanInput<'a> {
    /// The loaded rules.
    pub rules: &'a RuleSet,
    /// Evaluation time (the poll's start).
    pub now: DateTime<Utc>,
    /// Every resource of the new snapshot.
    pub resources: &'a [Resource],
    /// The snapshot's changes against its base.
    pub changes: &'a [PlannedChange<'a>],
    /// Whether this is the workspace's first snapshot.
    pub baseline: bool,
    /// Whether change rules see every resource of a baseline as added.
    pub alert_on_baseline: bool,
    /// Kinds this snapshot collected for the first time (a new kind, or one turned on): a
    /// baseline for those kinds, whose changes (all `added`) raise no change alert unless
    /// `alert_on_baseline`.
    pub baseline_kinds: &'a [ResourceKind],
    /// Kinds this snapshot could not read in full (unavailable, or incomplete): resources of
    /// theirs it did not see are unknown, not gone, so their findings are left as they were.
    pub unread_kinds: &'a [ResourceKind],
    /// Open findings of the workspace.
    pub open_findings: &'a [AlertRecord],
    /// Each rule's fingerprint when last evaluated.
    pub rule_states: &'a HashMap<String, String>,
    /// When each unchanged resource's current version was first seen (only consulted for
    /// resources evaluated by full-evaluation rules; see [`full_rules`]).
    pub seen_since: &'a HashMap<(ResourceKind, String), DateTime<Utc>>,
    /// The `inventory` variable (see [`crate::rules::inventory`]).
    pub inventory: Value,
    /// Audit events this snapshot stores for the first time: audit-event rules see each once.
    pub audit_events: &'a [AuditEvent],
    /// Effective access this snapshot gained and lost: access rules see each once.
    pub access: Option<&'a crate::access::PolledAccess>,
    /// The snapshot's relationships, for the `related` variable (`None` when no rule reads it).
    pub relations: Option<&'a crate::relations::Relations<'a>>,
    /// Who acted in the audit trail, for `last_acting` and `trail_since`: `None` when this poll
    /// did not read the trail (or no rule reads them), and then both are `null`.
    pub trail: Option<&'a crate::activity::TrailActivity>,
}

/// The enabled compliance rules that must see every resource of their kind this time: new or
/// edited since last evaluated, or time-dependent.
pub fn full_rules<'r>(rules: &'r RuleSet, states: &HashMap<String, String>) -> Vec<&'r Rule> {
    rules
        .rules()
        .iter()
        .filter(|r| r.enabled && !r.is_change())
        .filter(|r| {
            r.is_time_dependent() || states.get(&r.id).map(String::as_str) != Some(r.fingerprint())
        })
        .collect()
}

/// Whether `rule` reads what the audit trail shows of its actors (`last_acting`,
/// `trail_since`): without a read of the trail it can neither fire nor resolve.
fn reads_trail(rule: &Rule) -> bool {
    rule.reads("last_acting") || rule.reads("trail_since")
}

/// Plans the alerts of one snapshot. `load_version` reads a stored version's body (the
/// `before` side of modified and removed resources).
pub fn plan<E>(
    input: &PlanInput<'_>,
    mut load_version: impl FnMut(i64) -> Result<Value, E>,
) -> Result<AlertPlan, E> {
    let mut evaluator = Evaluator::new(input.rules, input.now, input.inventory.clone());
    if let Some(relations) = input.relations {
        evaluator = evaluator.with_relations(relations);
    }
    if let Some(trail) = input.trail {
        evaluator = evaluator.with_trail(trail);
    }
    let mut out = AlertPlan::default();
    let enabled: HashMap<&str, &Rule> = input
        .rules
        .rules()
        .iter()
        .filter(|r| r.enabled)
        .map(|r| (r.id.as_str(), r))
        .collect();

    // Rules gone or disabled: their findings resolve and their state is dropped.
    let mut dropped: Vec<&String> = input
        .rule_states
        .keys()
        .filter(|id| !enabled.contains_key(id.as_str()))
        .collect();
    dropped.sort();
    out.dropped_rules = dropped.into_iter().cloned().collect();
    let mut open: HashMap<(&str, ResourceKind, &str), &AlertRecord> = HashMap::new();
    for finding in input.open_findings {
        // segwatch's own alerts about itself follow the poll outcome, not the rules.
        if is_meta(&finding.rule_id) {
            continue;
        }
        if enabled
            .get(finding.rule_id.as_str())
            .is_some_and(|r| !r.is_change())
        {
            open.insert(
                (
                    finding.rule_id.as_str(),
                    finding.resource_kind,
                    finding.resource_id.as_str(),
                ),
                finding,
            );
        } else {
            out.resolved.push(ResolvedFinding {
                alert: finding.clone(),
                resolution: Resolution::RuleRemoved,
            });
        }
    }

    // Compliance: changed resources see every rule of their kind; unchanged ones only the rules
    // that need a full pass.
    let full = full_rules(input.rules, input.rule_states);
    let mut full_by_kind: HashMap<ResourceKind, Vec<&str>> = HashMap::new();
    for rule in &full {
        full_by_kind
            .entry(rule.resource)
            .or_default()
            .push(rule.id.as_str());
    }
    // Changed resources, with who changed them: a finding a change opens names its actor.
    // A change that is only API drift changed nothing anyone did: no re-evaluation. The change's
    // index ties an update of a finding to its change row.
    let changed: HashMap<(ResourceKind, &str), (usize, &Attribution)> = input
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.change.op != ChangeOp::Removed && !is_drift_only(&c.change))
        .map(|(i, c)| {
            (
                (c.change.kind, c.change.resource_id.as_str()),
                (i, &c.change.attribution),
            )
        })
        .collect();
    let mut evaluated: HashSet<(&str, ResourceKind, &str)> = HashSet::new();
    for resource in input.resources {
        let change = changed.get(&(resource.kind, resource.id.as_str())).copied();
        let attribution = change.map(|(_, a)| a);
        let is_changed = input.baseline || attribution.is_some();
        let only = full_by_kind.get(&resource.kind);
        if !is_changed && only.is_none() {
            continue;
        }
        let body: Value =
            serde_json::from_str(&resource.body).expect("resource bodies are JSON we serialised");
        let seen_since = if is_changed {
            input.now
        } else {
            input
                .seen_since
                .get(&(resource.kind, resource.id.clone()))
                .copied()
                .unwrap_or(input.now)
        };
        let subject = Subject {
            kind: resource.kind,
            id: &resource.id,
            name: &resource.name,
            body: &body,
            seen_since: Some(seen_since),
        };
        let verdicts = evaluator.check_resource(
            &subject,
            if is_changed {
                None
            } else {
                only.map(Vec::as_slice)
            },
        );
        for verdict in verdicts {
            out.evaluations += 1;
            let rule = verdict.rule;
            let key = (rule.id.as_str(), resource.kind, resource.id.as_str());
            evaluated.insert(key);
            let existing = open.remove(&key);
            match (verdict.outcome, existing) {
                // Still non-compliant: no repeat. When this poll changed the resource (a real
                // change, not a baseline nor API drift), sinks that track the finding hear of it.
                (
                    Outcome::Fire {
                        summary,
                        explanation,
                    },
                    Some(f),
                ) => {
                    if let (false, Some((change_index, attribution))) = (input.baseline, change) {
                        out.updated.push(UpdatedFinding {
                            alert: f.clone(),
                            summary,
                            explanation,
                            attribution: attribution.clone(),
                            change_index,
                        });
                    }
                }
                (
                    Outcome::Fire {
                        summary,
                        explanation,
                    },
                    None,
                ) => {
                    out.opened.push(NewAlert {
                        attribution: attribution.cloned().unwrap_or_default(),
                        ..new_alert_for(
                            rule,
                            resource.kind,
                            &resource.id,
                            &resource.name,
                            summary,
                            explanation,
                        )
                    });
                }
                // A rule on the audit trail's actors, in a poll that did not read the trail:
                // the user may still be inactive; the finding stays as it was.
                (Outcome::Pass, Some(f)) if input.trail.is_none() && reads_trail(rule) => {
                    open.insert(key, f);
                }
                (Outcome::Pass, Some(f)) => out.resolved.push(resolve(f, Resolution::Compliant)),
                (Outcome::Exempt { .. }, Some(f)) => {
                    out.resolved.push(resolve(f, Resolution::Exempted))
                }
                (Outcome::Pass | Outcome::Exempt { .. }, None) => {}
                (Outcome::Error { message }, existing) => {
                    // State is unknown: keep the finding as it was.
                    if let Some(f) = existing {
                        open.insert(key, f);
                    }
                    out.problems
                        .push(problem(rule, resource.kind, &resource.id, message));
                }
            }
        }
    }
    // Findings of removed resources resolve; findings of edited rules that no longer cover a
    // resource of their kind resolve too. Whatever else is left open stays open.
    let removed: HashSet<(ResourceKind, &str)> = input
        .changes
        .iter()
        .filter(|c| c.change.op == ChangeOp::Removed)
        .map(|c| (c.change.kind, c.change.resource_id.as_str()))
        .collect();
    let full_ids: HashSet<&str> = full.iter().map(|r| r.id.as_str()).collect();
    let mut leftover: Vec<_> = open.into_iter().collect();
    leftover.sort_by_key(|(_, f)| f.id);
    for ((rule_id, kind, id), finding) in leftover {
        if removed.contains(&(kind, id)) {
            out.resolved.push(resolve(finding, Resolution::Removed));
        } else if full_ids.contains(rule_id)
            && !evaluated.contains(&(rule_id, kind, id))
            && !input.unread_kinds.contains(&kind)
        {
            out.resolved.push(resolve(finding, Resolution::RuleChanged));
        }
    }

    // Change rules: one alert per rule and change.
    for (index, planned) in input.changes.iter().enumerate() {
        let change = &planned.change;
        if (input.baseline_kinds.contains(&change.kind) && !input.alert_on_baseline)
            || is_drift_only(change)
        {
            continue;
        }
        let before = planned.before_version.map(&mut load_version).transpose()?;
        let after = planned
            .after
            .map(|r| serde_json::from_str::<Value>(&r.body).expect("resource bodies are JSON"));
        let body = after
            .as_ref()
            .or(before.as_ref())
            .expect("a change has a before or an after");
        let subject = Subject {
            kind: change.kind,
            id: &change.resource_id,
            name: &change.name,
            body,
            seen_since: Some(input.now),
        };
        let facts = ChangeFacts {
            op: change.op,
            before: before.as_ref(),
            after: after.as_ref(),
            fields: &real_fields(&change.fields),
            attribution: &change.attribution,
        };
        let verdicts = evaluator.check_change(&subject, &facts);
        record_change_verdicts(
            &mut out,
            verdicts,
            (change.kind, &change.resource_id, &change.name),
            Some(index),
            &change.attribution,
        );
    }
    // Audit-event rules: each new event is a subject once, as an `added` change of kind
    // `audit_event`. The events of a baseline are history, treated like its resources.
    if !input.baseline || input.alert_on_baseline {
        for event in input.audit_events {
            let body: Value =
                serde_json::from_str(&event.body).expect("event bodies are JSON we serialised");
            let attribution = event.attribution();
            let name = audit_event_name(event);
            let subject = Subject {
                kind: ResourceKind::AuditEvent,
                id: &event.id,
                name,
                body: &body,
                seen_since: Some(input.now),
            };
            let facts = ChangeFacts {
                op: ChangeOp::Added,
                before: None,
                after: Some(&body),
                fields: &[],
                attribution: &attribution,
            };
            let verdicts = evaluator.check_change(&subject, &facts);
            record_change_verdicts(
                &mut out,
                verdicts,
                (ResourceKind::AuditEvent, &event.id, name),
                None,
                &attribution,
            );
        }
    }
    // Access rules: each grant gained or lost is a subject once, `added` or `removed`, named
    // by its grant; who made it is who made the change that caused it. One change (a label on
    // a source, a role taken off a group) can move thousands of grants: a rule's alerts for the
    // grants of one resource moved by one cause the same way are one alert, counting them.
    let mut access_groups: Vec<AccessAlertGroup> = Vec::new();
    let mut group_of: HashMap<(String, String, String, ChangeOp, String), usize> = HashMap::new();
    // Without an enabled access rule there is nothing to evaluate: no grant is made into a
    // subject (a relabel can move hundreds of thousands).
    let any_access_rule = enabled.values().any(|r| r.resource == ResourceKind::Access);
    let attributed = input
        .access
        .filter(|_| any_access_rule)
        .into_iter()
        .flat_map(|a| a.attributed(input.changes));
    for access in attributed {
        let body = access.body();
        let id = access.subject_id();
        let name = access.subject_name();
        let op = match access.change.change {
            crate::access::ChangeKind::Added => ChangeOp::Added,
            crate::access::ChangeKind::Removed => ChangeOp::Removed,
        };
        let subject = Subject {
            kind: ResourceKind::Access,
            id: &id,
            name: &name,
            body: &body,
            seen_since: Some(input.now),
        };
        let facts = ChangeFacts {
            op,
            before: (op == ChangeOp::Removed).then_some(&body),
            after: (op == ChangeOp::Added).then_some(&body),
            fields: &[],
            attribution: &access.attribution,
        };
        let grant = &access.change.grant;
        for verdict in evaluator.check_change(&subject, &facts) {
            out.evaluations += 1;
            match verdict.outcome {
                Outcome::Fire {
                    summary,
                    explanation,
                } => {
                    let key = (
                        verdict.rule.id.clone(),
                        grant.resource.kind.clone(),
                        grant.resource.id.clone(),
                        op,
                        format!("{}:{}", access.change.cause.kind, access.change.cause.id),
                    );
                    match group_of.get(&key) {
                        Some(&i) => access_groups[i].add(&grant.user.email),
                        None => {
                            group_of.insert(key.clone(), access_groups.len());
                            access_groups.push(AccessAlertGroup {
                                alert: NewAlert {
                                    attribution: access.attribution.clone(),
                                    ..new_alert_for(
                                        verdict.rule,
                                        ResourceKind::Access,
                                        &id,
                                        &name,
                                        summary,
                                        explanation,
                                    )
                                },
                                resource: (grant.resource.kind.clone(), grant.resource.id.clone()),
                                resource_name: grant.resource.name.clone(),
                                op,
                                cause: key.4,
                                grants: 1,
                                users: vec![grant.user.email.clone()],
                            });
                        }
                    }
                }
                Outcome::Error { message } => {
                    out.problems
                        .push(problem(verdict.rule, ResourceKind::Access, &id, message))
                }
                Outcome::Pass | Outcome::Exempt { .. } => {}
            }
        }
    }
    out.opened
        .extend(access_groups.into_iter().map(AccessAlertGroup::into_alert));
    // A baseline has no recorded changes; when asked, its resources count as added for change
    // rules (these alerts have no change row).
    if input.baseline && input.alert_on_baseline {
        for resource in input.resources {
            let body: Value =
                serde_json::from_str(&resource.body).expect("resource bodies are JSON");
            let subject = Subject {
                kind: resource.kind,
                id: &resource.id,
                name: &resource.name,
                body: &body,
                seen_since: Some(input.now),
            };
            let unknown = Attribution::default();
            let facts = ChangeFacts {
                op: ChangeOp::Added,
                before: None,
                after: Some(&body),
                fields: &[],
                attribution: &unknown,
            };
            let verdicts = evaluator.check_change(&subject, &facts);
            record_change_verdicts(
                &mut out,
                verdicts,
                (resource.kind, &resource.id, &resource.name),
                None,
                &unknown,
            );
        }
    }

    out.rule_states = enabled
        .values()
        .map(|r| (r.id.clone(), r.fingerprint().to_string()))
        .collect();
    out.rule_states.sort();
    Ok(out)
}

/// The name an audit event goes by as an alert's subject: the resource it affected.
pub fn audit_event_name(event: &AuditEvent) -> &str {
    if event.resource_name.is_empty() {
        &event.resource_id
    } else {
        &event.resource_name
    }
}

/// One access rule's alerts for the grants of one resource moved one way by one cause.
struct AccessAlertGroup {
    /// The first grant's alert.
    alert: NewAlert,
    /// `(PermissionResourceV1.type, id)` of the resource reached.
    resource: (String, String),
    resource_name: String,
    op: ChangeOp,
    /// `kind:id` of the cause.
    cause: String,
    grants: usize,
    /// The first [`AccessAlertGroup::LISTED`] users' emails.
    users: Vec<String>,
}

impl AccessAlertGroup {
    /// Users an alert for several grants names; the rest are counted.
    const LISTED: usize = 20;

    fn add(&mut self, email: &str) {
        self.grants += 1;
        if self.users.len() < Self::LISTED {
            self.users.push(email.to_string());
        }
    }

    /// One grant: its own alert. Several: one alert for the resource and cause, with the first
    /// grant's summary, the count and the first users.
    fn into_alert(self) -> NewAlert {
        if self.grants == 1 {
            return self.alert;
        }
        let (kind, id) = &self.resource;
        let verb = if self.op == ChangeOp::Added {
            "gained"
        } else {
            "lost"
        };
        let more = self.grants - 1;
        NewAlert {
            resource_id: format!("{kind}:{id}|{}|{}", self.op, self.cause),
            resource_name: self.resource_name.clone(),
            summary: format!(
                "{} (and {more} more grant{} {verb} on {} by the same change)",
                self.alert.summary,
                if more == 1 { "" } else { "s" },
                self.resource_name
            ),
            explanation: serde_json::json!({
                "grants": self.grants,
                "users": self.users,
                "users_listed": self.users.len(),
                "first": self.alert.explanation,
            }),
            ..self.alert
        }
    }
}

/// Records change-rule verdicts: a firing rule is one alert (tied to its change row if any).
fn record_change_verdicts(
    out: &mut AlertPlan,
    verdicts: Vec<Verdict<'_>>,
    (kind, id, name): (ResourceKind, &str, &str),
    change_index: Option<usize>,
    attribution: &Attribution,
) {
    for verdict in verdicts {
        out.evaluations += 1;
        match verdict.outcome {
            Outcome::Fire {
                summary,
                explanation,
            } => out.opened.push(NewAlert {
                change_index,
                attribution: attribution.clone(),
                ..new_alert_for(verdict.rule, kind, id, name, summary, explanation)
            }),
            Outcome::Error { message } => {
                out.problems.push(problem(verdict.rule, kind, id, message))
            }
            Outcome::Pass | Outcome::Exempt { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;

fn resolve(finding: &AlertRecord, resolution: Resolution) -> ResolvedFinding {
    ResolvedFinding {
        alert: finding.clone(),
        resolution,
    }
}

fn problem(rule: &Rule, kind: ResourceKind, id: &str, message: String) -> EvalProblem {
    EvalProblem {
        rule_id: rule.id.clone(),
        resource_kind: kind,
        resource_id: id.to_string(),
        message,
    }
}

fn new_alert_for(
    rule: &Rule,
    kind: ResourceKind,
    id: &str,
    name: &str,
    summary: String,
    explanation: Value,
) -> NewAlert {
    NewAlert {
        rule_id: rule.id.clone(),
        rule_kind: if rule.is_change() {
            "change"
        } else {
            "compliance"
        },
        severity: rule.severity,
        title: rule.title.clone(),
        resource_kind: kind,
        resource_id: id.to_string(),
        resource_name: name.to_string(),
        change_index: None,
        summary,
        explanation,
        remediation: rule.remediation.clone(),
        tags: rule.tags.clone(),
        attribution: Attribution::default(),
    }
}
