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
//! - **Data flows** are the data-flow map ([`crate::flows`]) of the last complete snapshot:
//!   a table in every format, and a drawn graph (inline SVG) in HTML
//!   ([`crate::flows::graph`]).

mod flows;
mod gather;
mod render;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

use segwatch_core::diff::ChangeOp;
use segwatch_core::flows::{FlowMap, PersonalPatterns};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::ResourceKind;
use segwatch_core::rules::{RuleSet, Severity};
use segwatch_core::time::Timestamp;
use segwatch_store::{SnapshotInfo, StoreError};

pub use gather::{frameworks, gather};
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
    /// The personal-field patterns of the data-flow section (`[flows]`).
    pub flow_patterns: &'a PersonalPatterns,
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
    /// Where each source's data goes at the last complete snapshot.
    pub data_flows: DataFlows,
}

/// The data-flow map of the last complete snapshot (docs/FLOWS.md).
#[derive(Debug, Clone, Serialize)]
pub struct DataFlows {
    /// The snapshot it was read from (the last complete one).
    pub snapshot_id: SnapshotId,
    /// The personal-field patterns it was computed with.
    pub personal_field_patterns: Vec<String>,
    /// Flows whose source is labelled production.
    pub production_flows: usize,
    /// Flows that carry at least one personal field.
    pub personal_flows: usize,
    /// Sources, destinations and warehouses, and the flows between them.
    #[serde(flatten)]
    pub map: FlowMap,
}

impl DataFlows {
    /// The section of `map`, read from snapshot `snapshot_id`.
    pub fn new(snapshot_id: SnapshotId, patterns: &PersonalPatterns, map: FlowMap) -> DataFlows {
        let production = |source: &str| map.source(source).is_some_and(|s| s.production);
        DataFlows {
            snapshot_id,
            personal_field_patterns: patterns.patterns().map(str::to_string).collect(),
            production_flows: map
                .flows
                .iter()
                .filter(|f| production(&f.source_id))
                .count(),
            personal_flows: map
                .flows
                .iter()
                .filter(|f| !f.personal_fields.is_empty())
                .count(),
            map,
        }
    }
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
    pub id: SnapshotId,
    /// When its poll started.
    pub started_at: Timestamp,
    /// When it completed.
    pub finished_at: Option<Timestamp>,
    /// Resources it holds.
    pub resource_count: Option<i64>,
}

impl From<&SnapshotInfo> for SnapshotRef {
    fn from(s: &SnapshotInfo) -> Self {
        SnapshotRef {
            id: s.id,
            started_at: s.started_at,
            finished_at: s.finished_at,
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
    pub alert_id: AlertId,
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
    pub opened_at: Timestamp,
    /// The snapshot that opened it.
    pub opened_snapshot_id: SnapshotId,
    /// Seconds from its opening to the last snapshot.
    pub age_secs: i64,
}

/// A finding resolved in the period.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedFinding {
    /// Alert id.
    pub alert_id: AlertId,
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
    pub opened_at: Timestamp,
    /// When it was resolved.
    pub resolved_at: Timestamp,
    /// The snapshot that resolved it.
    pub resolved_snapshot_id: SnapshotId,
    /// Seconds it was open.
    pub open_secs: i64,
    /// `compliant`, `removed`, `exempted`, `rule_changed` or `rule_removed`.
    pub resolution: String,
}

/// A change alert fired in the period.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeAlert {
    /// Alert id.
    pub alert_id: AlertId,
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
    pub fired_at: Timestamp,
    /// The snapshot that fired it.
    pub snapshot_id: SnapshotId,
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

#[cfg(test)]
mod tests;
