//! `segwatch report`: the compliance report of one period that an auditor can be handed,
//! computed from the snapshot database (read only) and the configured rules.
//!
//! [`gather`] builds a [`Report`]; [`render`] writes it as HTML, Markdown or JSON. What a report
//! rests on is stated in its [`Header`]: the complete snapshots of the period (the first and the
//! last), how many polls failed, and a fingerprint of the rule set.
//!
//! - **Compliance results** are a fresh evaluation of the configured compliance rules on the
//!   state of the last complete snapshot of the period, reconstructed from the store, at that
//!   snapshot's start time (as the poll that took it did): per rule, the resources that pass,
//!   fail, are exempted, or could not be evaluated.
//! - **Pass rates** are passing checks over all checks, where a check is one rule on one
//!   resource: exempted resources are counted apart and are not checks; a check that could not
//!   be evaluated is a check that did not pass. A framework tag (`soc2:CC6.1`) is grouped by its
//!   framework (`soc2`) and control (`CC6.1`); a framework's rate counts each rule once, however
//!   many of its controls the rule carries.
//! - **Alerts and changes** of the period are those raised, resolved or recorded by the
//!   period's snapshots; open findings are those open right after the last complete one.

mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use segwatch_core::alerts::AlertRecord;
use segwatch_core::diff::ChangeOp;
use segwatch_core::model::ResourceKind;
use segwatch_core::rules::{Evaluator, Outcome, RuleKind, RuleSet, Severity, Subject};
use segwatch_store::{SnapshotInfo, SnapshotStatus, Store, StoreError, StoredResource};

pub use render::{Format, render};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The period holds no complete snapshot to report on.
    #[error("{0}")]
    NoCompleteSnapshot(String),
    /// A stored value could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A template failed to render.
    #[error("the report template {name} failed to render: {message}")]
    Render {
        /// The template.
        name: &'static str,
        /// minijinja's description, with the line.
        message: String,
    },
}

/// The period reported on, `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Start (included).
    pub since: DateTime<Utc>,
    /// End (excluded).
    pub until: DateTime<Utc>,
}

/// How long the default period is, before `until`.
pub const DEFAULT_PERIOD_DAYS: i64 = 30;

/// Which side of a period a time given on the command line bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The start: a bare date means its first instant.
    Since,
    /// The end (excluded): a bare date means the whole day is included, up to the next
    /// midnight.
    Until,
}

/// Parses an RFC 3339 timestamp (`2026-11-01T09:30:00Z`, any offset) or a date (`2026-11-01`,
/// UTC). The error says what is accepted.
pub fn parse_time(text: &str, bound: Bound) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match bound {
            Bound::Since => Some(day),
            Bound::Until => day.succ_opt(),
        };
        if let Some(start) = day.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(start.and_utc());
        }
    }
    Err(format!(
        "`{text}` is not a time: expected an RFC 3339 timestamp (2026-11-01T09:30:00Z) or a date (2026-11-01, UTC)"
    ))
}

/// What to report on, besides the database.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// The workspace's label (from the configuration).
    pub workspace: &'a str,
    /// The configured rules.
    pub rules: &'a RuleSet,
    /// Where the rules were loaded from, for the header.
    pub rules_source: String,
    /// The period.
    pub period: Period,
    /// When the report is generated.
    pub generated_at: DateTime<Utc>,
    /// At most this many rows per list of findings or alerts (most severe first); `None` for
    /// all. The header of each list says how many there are in all.
    pub max_rows: Option<usize>,
}

/// A compliance report, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the report covers and rests on.
    pub header: Header,
    /// The key numbers.
    pub summary: Summary,
    /// One row per enabled compliance rule: most severe first.
    pub compliance_rules: Vec<ComplianceRuleResult>,
    /// One row per enabled change rule: most severe first.
    pub change_rules: Vec<ChangeRuleResult>,
    /// Pass rates per framework and control.
    pub frameworks: Vec<FrameworkResult>,
    /// Findings open at the last complete snapshot: most severe, then oldest, first.
    pub open_findings: Listing<OpenFinding>,
    /// Findings resolved in the period: most severe, then earliest resolved, first.
    pub resolved_findings: Listing<ResolvedFinding>,
    /// Change alerts fired in the period: most severe, then earliest, first.
    pub change_alerts: Listing<ChangeAlert>,
    /// Changes recorded in the period, per resource kind (kinds with none left out).
    pub changes: Vec<KindChanges>,
}

/// What the report covers and which evidence it was computed from.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The workspace's label.
    pub workspace: String,
    /// Segment's id of the workspace.
    pub segment_workspace_id: Option<String>,
    /// Start of the period (included).
    pub since: String,
    /// End of the period (excluded).
    pub until: String,
    /// When the report was generated.
    pub generated_at: String,
    /// `segwatch <version>`.
    pub generator: String,
    /// The first complete snapshot of the period.
    pub first_snapshot: SnapshotRef,
    /// The last complete snapshot of the period: the state reported on.
    pub last_snapshot: SnapshotRef,
    /// Complete polls in the period.
    pub complete_polls: usize,
    /// Failed polls in the period.
    pub failed_polls: usize,
    /// Polls of the period still running (or whose process died) when the report was made.
    pub running_polls: usize,
    /// The rules evaluated.
    pub rule_set: RuleSetInfo,
    /// The head of the tamper-evidence hash chain at the last snapshot; rendered only when
    /// present.
    pub chain_head_hash: Option<String>,
}

/// A snapshot named in the header.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRef {
    /// Snapshot id.
    pub id: i64,
    /// When its poll started.
    pub started_at: String,
    /// When it completed.
    pub finished_at: Option<String>,
    /// Resources it holds.
    pub resource_count: Option<i64>,
}

impl From<&SnapshotInfo> for SnapshotRef {
    fn from(s: &SnapshotInfo) -> Self {
        SnapshotRef {
            id: s.id,
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
            resource_count: s.resource_count,
        }
    }
}

/// The rule set the report evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSetInfo {
    /// Where it was loaded from.
    pub source: String,
    /// Enabled compliance rules.
    pub compliance: usize,
    /// Enabled change rules.
    pub change: usize,
    /// Disabled rules (not evaluated, not reported).
    pub disabled: usize,
    /// `sha256:` of the enabled rules' ids and fingerprints: equal fingerprints, equal rules.
    pub fingerprint: String,
}

/// The key numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Resources in the last complete snapshot.
    pub resources: i64,
    /// Every compliance check on the last snapshot.
    pub checks: Tally,
    /// Compliance rules with at least one failing check.
    pub failing_rules: usize,
    /// Open findings at the last snapshot.
    pub open_findings: usize,
    /// Of which, per severity (most severe first, zeros included).
    pub open_by_severity: Vec<SeverityCount>,
    /// Findings resolved in the period.
    pub resolved_findings: usize,
    /// Change alerts fired in the period.
    pub change_alerts: usize,
    /// Of which, per severity (most severe first, zeros included).
    pub change_alerts_by_severity: Vec<SeverityCount>,
    /// Changes recorded in the period.
    pub changes: u64,
}

/// A count for one severity.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeverityCount {
    /// The severity.
    pub severity: Severity,
    /// How many.
    pub count: usize,
}

/// Check results: one rule (or several) on the resources it applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Resources that satisfy the rule.
    pub pass: u64,
    /// Resources that do not, and are not exempted.
    pub fail: u64,
    /// Resources that do not, but an active exception of the rule covers.
    pub exempt: u64,
    /// Resources on which the condition could not be evaluated.
    pub error: u64,
}

impl Tally {
    /// Checks: every evaluation but the exempted ones.
    pub fn checks(&self) -> u64 {
        self.pass + self.fail + self.error
    }

    /// Passing checks over all checks, in percent; `None` without checks.
    pub fn pass_rate(&self) -> Option<f64> {
        let checks = self.checks();
        (checks > 0).then(|| self.pass as f64 * 100.0 / checks as f64)
    }

    fn add(&mut self, other: &Tally) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.exempt += other.exempt;
        self.error += other.error;
    }
}

impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown {
            pass: u64,
            fail: u64,
            exempt: u64,
            error: u64,
            checks: u64,
            pass_rate: Option<f64>,
        }
        Shown {
            pass: self.pass,
            fail: self.fail,
            exempt: self.exempt,
            error: self.error,
            checks: self.checks(),
            pass_rate: self.pass_rate(),
        }
        .serialize(serializer)
    }
}

/// A compliance rule's results on the last snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ComplianceRuleResult {
    /// Rule id.
    pub id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// The kind of resource it checks.
    pub resource_kind: ResourceKind,
    /// Framework tags.
    pub tags: Vec<String>,
    /// Its checks.
    pub tally: Tally,
    /// Findings of the rule recorded as open at the last snapshot; differs from `tally.fail`
    /// when the rule changed since the polls evaluated it.
    pub recorded_open: usize,
    /// The first evaluation error, if any.
    pub first_error: Option<String>,
}

/// A change rule and what it fired in the period.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRuleResult {
    /// Rule id.
    pub id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// The kind of resource it watches.
    pub resource_kind: ResourceKind,
    /// The operations it alerts on.
    pub on: Vec<ChangeOp>,
    /// Framework tags.
    pub tags: Vec<String>,
    /// Alerts it fired in the period.
    pub alerts: usize,
}

/// Pass rate of one framework (the tag prefix before `:`), with its controls.
#[derive(Debug, Clone, Serialize)]
pub struct FrameworkResult {
    /// The prefix, e.g. `soc2`; empty for tags without one.
    pub key: String,
    /// A readable name, e.g. `SOC 2`.
    pub name: String,
    /// Checks of the compliance rules carrying any of its tags, each rule once.
    pub tally: Tally,
    /// Compliance rules carrying any of its tags.
    pub compliance_rules: usize,
    /// Change rules carrying any of its tags.
    pub change_rules: usize,
    /// Alerts fired in the period by those change rules.
    pub change_alerts: usize,
    /// Its controls, in natural order (`CC6.2` before `CC6.10`).
    pub controls: Vec<ControlResult>,
}

/// Pass rate of one tag.
#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    /// The whole tag, e.g. `soc2:CC6.1`.
    pub tag: String,
    /// The control, e.g. `CC6.1`.
    pub control: String,
    /// Checks of the compliance rules carrying the tag.
    pub tally: Tally,
    /// Those rules' ids.
    pub compliance_rules: Vec<String>,
    /// The change rules carrying the tag.
    pub change_rules: Vec<String>,
    /// Alerts fired in the period by those change rules.
    pub change_alerts: usize,
}

/// A list that may have been cut to the most important rows.
#[derive(Debug, Clone, Serialize)]
pub struct Listing<T> {
    /// The rows shown.
    pub rows: Vec<T>,
    /// How many there are in all.
    pub total: usize,
}

/// A finding open at the last snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct OpenFinding {
    /// Alert id.
    pub alert_id: i64,
    /// Rule id.
    pub rule_id: String,
    /// Rule title (as stored with the finding).
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Resource kind.
    pub resource_kind: ResourceKind,
    /// Resource id.
    pub resource_id: String,
    /// Resource name.
    pub resource_name: String,
    /// One-line summary.
    pub summary: String,
    /// When it was opened.
    pub opened_at: String,
    /// The snapshot that opened it.
    pub opened_snapshot_id: i64,
    /// Seconds from its opening to the last snapshot.
    pub age_secs: i64,
}

/// A finding resolved in the period.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedFinding {
    /// Alert id.
    pub alert_id: i64,
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Resource kind.
    pub resource_kind: ResourceKind,
    /// Resource id.
    pub resource_id: String,
    /// Resource name.
    pub resource_name: String,
    /// One-line summary.
    pub summary: String,
    /// When it was opened.
    pub opened_at: String,
    /// When it was resolved.
    pub resolved_at: String,
    /// The snapshot that resolved it.
    pub resolved_snapshot_id: i64,
    /// Seconds it was open.
    pub open_secs: i64,
    /// `compliant`, `removed`, `exempted`, `rule_changed` or `rule_removed`.
    pub resolution: String,
}

/// A change alert fired in the period.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeAlert {
    /// Alert id.
    pub alert_id: i64,
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Resource kind.
    pub resource_kind: ResourceKind,
    /// Resource id.
    pub resource_id: String,
    /// Resource name.
    pub resource_name: String,
    /// One-line summary.
    pub summary: String,
    /// When it fired.
    pub fired_at: String,
    /// The snapshot that fired it.
    pub snapshot_id: i64,
}

/// Changes of one resource kind in the period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindChanges {
    /// Resource kind.
    pub kind: String,
    /// Resources added.
    pub added: u64,
    /// Resources modified.
    pub modified: u64,
    /// Resources removed.
    pub removed: u64,
    /// All three.
    pub total: u64,
}

/// Builds the report of `input.period` from the store (reads only).
pub fn gather(
    store: &Store,
    workspace_id: i64,
    input: &ReportInput<'_>,
) -> Result<Report, ReportError> {
    let Period { since, until } = input.period;
    let polls = store.snapshots_between(workspace_id, &stored_time(since), &stored_time(until))?;
    let complete: Vec<&SnapshotInfo> = polls
        .iter()
        .filter(|s| s.status == SnapshotStatus::Complete)
        .collect();
    let (Some(first), Some(last)) = (complete.first(), complete.last()) else {
        return Err(no_complete_snapshot(
            store,
            workspace_id,
            input.period,
            polls.len(),
        )?);
    };
    let count = |status| polls.iter().filter(|s| s.status == status).count();
    // Everything the period's polls raised, resolved or recorded: an id range, since ids grow
    // with time.
    let (lo, hi) = (polls[0].id, polls[polls.len() - 1].id);
    let state_at = parse_stored(&last.started_at)?;
    let as_of = parse_stored(last.finished_at.as_deref().unwrap_or(&last.started_at))?;

    let resources = store.resources_at(workspace_id, last.id)?;
    let evaluated = evaluate(input.rules, &resources, state_at)?;
    let open = store.findings_open_at(workspace_id, last.id)?;
    let resolved = store.findings_resolved_between(workspace_id, lo, hi)?;
    let fired = store.change_alerts_between(workspace_id, lo, hi)?;
    let change_counts = store.change_counts_between(workspace_id, lo, hi)?;

    let mut open_by_rule: HashMap<&str, usize> = HashMap::new();
    for f in &open {
        *open_by_rule.entry(f.rule_id.as_str()).or_default() += 1;
    }
    let mut fired_by_rule: HashMap<&str, usize> = HashMap::new();
    for a in &fired {
        *fired_by_rule.entry(a.rule_id.as_str()).or_default() += 1;
    }

    let enabled = || input.rules.rules().iter().filter(|r| r.enabled);
    let mut compliance_rules: Vec<ComplianceRuleResult> = enabled()
        .filter(|r| !r.is_change())
        .map(|r| {
            let (tally, first_error) = evaluated.get(r.id.as_str()).cloned().unwrap_or_default();
            ComplianceRuleResult {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                resource_kind: r.resource,
                tags: r.tags.clone(),
                tally,
                recorded_open: open_by_rule.get(r.id.as_str()).copied().unwrap_or(0),
                first_error,
            }
        })
        .collect();
    compliance_rules.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    let mut change_rules: Vec<ChangeRuleResult> = enabled()
        .filter_map(|r| match &r.kind {
            RuleKind::Change { on } => Some(ChangeRuleResult {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                resource_kind: r.resource,
                on: on.clone(),
                tags: r.tags.clone(),
                alerts: fired_by_rule.get(r.id.as_str()).copied().unwrap_or(0),
            }),
            RuleKind::Compliance => None,
        })
        .collect();
    change_rules.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));

    let mut checks = Tally::default();
    for r in &compliance_rules {
        checks.add(&r.tally);
    }
    let changes = kind_changes(&change_counts);
    let summary = Summary {
        resources: last.resource_count.unwrap_or(resources.len() as i64),
        checks,
        failing_rules: compliance_rules.iter().filter(|r| r.tally.fail > 0).count(),
        open_findings: open.len(),
        open_by_severity: by_severity(&open),
        resolved_findings: resolved.len(),
        change_alerts: fired.len(),
        change_alerts_by_severity: by_severity(&fired),
        changes: changes.iter().map(|c| c.total).sum(),
    };
    let header = Header {
        workspace: input.workspace.to_string(),
        segment_workspace_id: store.workspace_segment_id(workspace_id)?,
        since: stored_time(since),
        until: stored_time(until),
        generated_at: stored_time(input.generated_at),
        generator: format!("segwatch {}", env!("CARGO_PKG_VERSION")),
        first_snapshot: SnapshotRef::from(*first),
        last_snapshot: SnapshotRef::from(*last),
        complete_polls: complete.len(),
        failed_polls: count(SnapshotStatus::Failed),
        running_polls: count(SnapshotStatus::Running),
        rule_set: rule_set_info(input.rules, &input.rules_source),
        chain_head_hash: store.snapshot_chain_hash(last.id)?,
    };
    Ok(Report {
        header,
        summary,
        frameworks: frameworks(&compliance_rules, &change_rules),
        compliance_rules,
        change_rules,
        open_findings: listing(open_rows(open, as_of)?, input.max_rows),
        resolved_findings: listing(resolved_rows(resolved)?, input.max_rows),
        change_alerts: listing(change_alert_rows(fired), input.max_rows),
        changes,
    })
}

/// The error for a period without a complete snapshot, saying where one can be found.
fn no_complete_snapshot(
    store: &Store,
    workspace_id: i64,
    period: Period,
    polls: usize,
) -> Result<ReportError, ReportError> {
    let span = format!(
        "between {} and {}",
        stored_time(period.since),
        stored_time(period.until)
    );
    let seen = match polls {
        0 => "no poll".to_string(),
        1 => "1 poll, not complete".to_string(),
        n => format!("{n} polls, none complete"),
    };
    let hint = match store.latest_complete(workspace_id)? {
        Some(id) => {
            let latest = store.snapshot(workspace_id, id)?;
            format!(
                "the latest complete snapshot is {id}, started {}; choose --since/--until around it",
                latest.started_at
            )
        }
        None => "the database holds no complete snapshot yet: run `segwatch poll`".to_string(),
    };
    Ok(ReportError::NoCompleteSnapshot(format!(
        "no complete snapshot {span} ({seen}); {hint}"
    )))
}

/// Evaluates every enabled compliance rule on every resource of its kind, as the poll of the
/// snapshot did: at `now`, each resource with the time its version was first seen. Returns,
/// per rule id, its tally and first evaluation error.
fn evaluate<'r>(
    rules: &'r RuleSet,
    resources: &[StoredResource],
    now: DateTime<Utc>,
) -> Result<HashMap<&'r str, (Tally, Option<String>)>, ReportError> {
    let mut out: HashMap<&'r str, (Tally, Option<String>)> = rules
        .rules()
        .iter()
        .filter(|r| r.enabled && !r.is_change())
        .map(|r| (r.id.as_str(), Default::default()))
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    let bodies: Vec<serde_json::Value> = resources
        .iter()
        .map(|r| {
            serde_json::from_str(&r.body)
                .map_err(|e| ReportError::Corrupt(format!("the body of {} {} ({e})", r.kind, r.id)))
        })
        .collect::<Result<_, _>>()?;
    let inventory = if rules
        .rules()
        .iter()
        .any(|r| r.enabled && r.reads("inventory"))
    {
        segwatch_core::rules::inventory(
            resources
                .iter()
                .zip(&bodies)
                .map(|(r, b)| (r.kind, b.clone())),
        )
    } else {
        serde_json::json!({})
    };
    let relations = segwatch_core::relations::Relations::from_parts(
        resources
            .iter()
            .map(|r| (r.kind, r.id.as_str(), r.body.as_str())),
    );
    let evaluator = Evaluator::new(rules, now, inventory).with_relations(&relations);
    for (resource, body) in resources.iter().zip(&bodies) {
        let subject = Subject {
            kind: resource.kind,
            id: &resource.id,
            name: &resource.name,
            body,
            seen_since: Some(parse_stored(&resource.seen_since)?),
        };
        for verdict in evaluator.check_resource(&subject, None) {
            let Some((tally, first_error)) = out.get_mut(verdict.rule.id.as_str()) else {
                continue;
            };
            match verdict.outcome {
                Outcome::Pass => tally.pass += 1,
                Outcome::Fire { .. } => tally.fail += 1,
                Outcome::Exempt { .. } => tally.exempt += 1,
                Outcome::Error { message } => {
                    tally.error += 1;
                    first_error.get_or_insert_with(|| format!("{}: {message}", resource.name));
                }
            }
        }
    }
    Ok(out)
}

/// Groups the rules' results by framework and control. Only compliance rules have checks;
/// change rules add the alerts they fired.
pub fn frameworks(
    compliance: &[ComplianceRuleResult],
    change: &[ChangeRuleResult],
) -> Vec<FrameworkResult> {
    #[derive(Default)]
    struct Acc<'a> {
        compliance: BTreeSet<&'a str>,
        change: BTreeSet<&'a str>,
    }
    let tally_of: HashMap<&str, Tally> = compliance
        .iter()
        .map(|r| (r.id.as_str(), r.tally))
        .collect();
    let alerts_of: HashMap<&str, usize> =
        change.iter().map(|r| (r.id.as_str(), r.alerts)).collect();
    // framework key → tag → rules carrying it.
    let mut by_framework: BTreeMap<&str, BTreeMap<&str, Acc<'_>>> = BTreeMap::new();
    let tagged = compliance
        .iter()
        .map(|r| (r.id.as_str(), &r.tags, false))
        .chain(change.iter().map(|r| (r.id.as_str(), &r.tags, true)));
    for (id, tags, is_change) in tagged {
        for tag in tags {
            let acc = by_framework
                .entry(split_tag(tag).0)
                .or_default()
                .entry(tag.as_str())
                .or_default();
            if is_change {
                acc.change.insert(id);
            } else {
                acc.compliance.insert(id);
            }
        }
    }
    let sum = |ids: &BTreeSet<&str>| {
        let mut t = Tally::default();
        for id in ids {
            t.add(&tally_of[id]);
        }
        t
    };
    let alerts = |ids: &BTreeSet<&str>| ids.iter().map(|id| alerts_of[id]).sum::<usize>();
    let mut out: Vec<FrameworkResult> = by_framework
        .into_iter()
        .map(|(key, tags)| {
            let mut all = Acc::default();
            let mut controls: Vec<ControlResult> = tags
                .into_iter()
                .map(|(tag, acc)| {
                    all.compliance.extend(&acc.compliance);
                    all.change.extend(&acc.change);
                    ControlResult {
                        tag: tag.to_string(),
                        control: split_tag(tag).1.to_string(),
                        tally: sum(&acc.compliance),
                        compliance_rules: acc.compliance.iter().map(|s| s.to_string()).collect(),
                        change_rules: acc.change.iter().map(|s| s.to_string()).collect(),
                        change_alerts: alerts(&acc.change),
                    }
                })
                .collect();
            controls.sort_by(|a, b| natural_cmp(&a.control, &b.control));
            FrameworkResult {
                key: key.to_string(),
                name: framework_name(key),
                tally: sum(&all.compliance),
                compliance_rules: all.compliance.len(),
                change_rules: all.change.len(),
                change_alerts: alerts(&all.change),
                controls,
            }
        })
        .collect();
    // Named frameworks alphabetically, tags without a framework last.
    out.sort_by(|a, b| {
        (a.key.is_empty(), a.name.to_lowercase()).cmp(&(b.key.is_empty(), b.name.to_lowercase()))
    });
    out
}

/// `soc2:CC6.1` → (`soc2`, `CC6.1`); a tag without `:` has no framework.
fn split_tag(tag: &str) -> (&str, &str) {
    match tag.split_once(':') {
        Some((framework, control)) => (framework.trim(), control.trim()),
        None => ("", tag.trim()),
    }
}

/// A readable name for the frameworks the starter rules use; others keep their prefix.
fn framework_name(key: &str) -> String {
    match key.to_ascii_lowercase().as_str() {
        "" => "Other tags".to_string(),
        "soc2" => "SOC 2".to_string(),
        "iso27001" => "ISO/IEC 27001".to_string(),
        "nist-800-53" | "nist" => "NIST SP 800-53".to_string(),
        "cis-v8" => "CIS Controls v8".to_string(),
        "cis" => "CIS Controls".to_string(),
        "pci-dss" | "pci" => "PCI DSS".to_string(),
        "hipaa" => "HIPAA".to_string(),
        "gdpr" => "GDPR".to_string(),
        _ => key.to_string(),
    }
}

/// Compares control names with digit runs as numbers: `A.5.9` < `A.5.18`, `CC6.2` < `CC6.10`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<Result<u128, &str>> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let digits = c.is_ascii_digit();
            let end = rest
                .find(|ch: char| ch.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (part, tail) = rest.split_at(end);
            // Non-digit parts sort before numbers at the same position, as in `AC-2` < `AC-2(7)`.
            out.push(if digits {
                part.parse().map_err(|_| part)
            } else {
                Err(part)
            });
            rest = tail;
        }
        out
    }
    fn key<'s>(p: &Result<u128, &'s str>) -> (u8, u128, &'s str) {
        match p {
            Ok(n) => (1, *n, ""),
            Err(s) => (0, 0, s),
        }
    }
    let (pa, pb) = (parts(a), parts(b));
    pa.iter()
        .map(key)
        .cmp(pb.iter().map(key))
        .then_with(|| a.cmp(b))
}

fn rule_set_info(rules: &RuleSet, source: &str) -> RuleSetInfo {
    let mut enabled: Vec<_> = rules.rules().iter().filter(|r| r.enabled).collect();
    enabled.sort_by(|a, b| a.id.cmp(&b.id));
    let mut hash = Sha256::new();
    for r in &enabled {
        hash.update(format!("{}\t{}\n", r.id, r.fingerprint()));
    }
    let change = enabled.iter().filter(|r| r.is_change()).count();
    RuleSetInfo {
        source: source.to_string(),
        compliance: enabled.len() - change,
        change,
        disabled: rules.rules().len() - enabled.len(),
        fingerprint: format!("sha256:{:x}", hash.finalize()),
    }
}

fn by_severity(alerts: &[AlertRecord]) -> Vec<SeverityCount> {
    Severity::ALL
        .iter()
        .rev()
        .map(|&severity| SeverityCount {
            severity,
            count: alerts.iter().filter(|a| a.severity == severity).count(),
        })
        .collect()
}

fn kind_changes(counts: &[segwatch_store::ChangeCount]) -> Vec<KindChanges> {
    ResourceKind::ALL
        .iter()
        .filter_map(|&kind| {
            let mut row = KindChanges {
                kind: kind.as_str().to_string(),
                ..KindChanges::default()
            };
            for c in counts.iter().filter(|c| c.kind == kind) {
                match c.op {
                    ChangeOp::Added => row.added += c.count,
                    ChangeOp::Modified => row.modified += c.count,
                    ChangeOp::Removed => row.removed += c.count,
                }
            }
            row.total = row.added + row.modified + row.removed;
            (row.total > 0).then_some(row)
        })
        .collect()
}

fn open_rows(
    open: Vec<AlertRecord>,
    as_of: DateTime<Utc>,
) -> Result<Vec<OpenFinding>, ReportError> {
    let mut rows = open
        .into_iter()
        .map(|a| {
            let opened = parse_stored(&a.opened_at)?;
            Ok(OpenFinding {
                alert_id: a.id,
                age_secs: (as_of - opened).num_seconds().max(0),
                rule_id: a.rule_id,
                title: a.title,
                severity: a.severity,
                resource_kind: a.resource_kind,
                resource_id: a.resource_id,
                resource_name: a.resource_name,
                summary: a.summary,
                opened_at: a.opened_at,
                opened_snapshot_id: a.snapshot_id,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    rows.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| b.age_secs.cmp(&a.age_secs))
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    Ok(rows)
}

fn resolved_rows(resolved: Vec<AlertRecord>) -> Result<Vec<ResolvedFinding>, ReportError> {
    let mut rows = resolved
        .into_iter()
        .map(|a| {
            let missing = |what: &str| {
                ReportError::Corrupt(format!("resolved finding {} has no {what}", a.id))
            };
            let resolved_at = a
                .resolved_at
                .clone()
                .ok_or_else(|| missing("resolved_at"))?;
            let open_secs = (parse_stored(&resolved_at)? - parse_stored(&a.opened_at)?)
                .num_seconds()
                .max(0);
            Ok(ResolvedFinding {
                alert_id: a.id,
                resolved_snapshot_id: a
                    .resolved_snapshot_id
                    .ok_or_else(|| missing("resolved_snapshot_id"))?,
                resolution: a.resolution.clone().unwrap_or_default(),
                open_secs,
                resolved_at,
                rule_id: a.rule_id,
                title: a.title,
                severity: a.severity,
                resource_kind: a.resource_kind,
                resource_id: a.resource_id,
                resource_name: a.resource_name,
                summary: a.summary,
                opened_at: a.opened_at,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    rows.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.resolved_snapshot_id.cmp(&b.resolved_snapshot_id))
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    Ok(rows)
}

fn change_alert_rows(fired: Vec<AlertRecord>) -> Vec<ChangeAlert> {
    let mut rows: Vec<ChangeAlert> = fired
        .into_iter()
        .map(|a| ChangeAlert {
            alert_id: a.id,
            rule_id: a.rule_id,
            title: a.title,
            severity: a.severity,
            resource_kind: a.resource_kind,
            resource_id: a.resource_id,
            resource_name: a.resource_name,
            summary: a.summary,
            fired_at: a.opened_at,
            snapshot_id: a.snapshot_id,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    rows
}

fn listing<T>(mut rows: Vec<T>, max: Option<usize>) -> Listing<T> {
    let total = rows.len();
    if let Some(max) = max {
        rows.truncate(max);
    }
    Listing { rows, total }
}

/// A time as the store writes it: RFC 3339 UTC with milliseconds, so bounds compare as text.
fn stored_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_stored(text: &str) -> Result<DateTime<Utc>, ReportError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ReportError::Corrupt(format!("bad stored timestamp `{text}`: {e}")))
}

#[cfg(test)]
mod tests;
