//! Gathering a [`Report`] from the store (reads only): the period's polls, a fresh evaluation
//! of the compliance rules on its last complete snapshot, its alerts and changes, and the
//! grouping of rule results by framework and control.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use segwatch_core::activity::TrailActivity;
use segwatch_core::alerts::AlertRecord;
use segwatch_core::diff::ChangeOp;
use segwatch_core::flows::{FlowMap, PersonalPatterns};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::rules::{
    Outcome, RuleKind, RuleSet, Severity, SnapshotContext, StateResource, any_reads, check_state,
};
use segwatch_core::time::Timestamp;
use segwatch_store::{SnapshotInfo, SnapshotStatus, Store, StoredResource};

use super::{
    ChangeAlert, ChangeRuleResult, ComplianceRuleResult, ControlResult, DataFlows, FrameworkResult,
    Header, KindChanges, Listing, OpenFinding, Period, Report, ReportError, ReportInput,
    ResolvedFinding, RuleSetInfo, SeverityCount, SnapshotRef, Summary, Tally,
};

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
    let state_at = last.started_at.as_datetime();
    let as_of = last.finished_at.unwrap_or(last.started_at).as_datetime();

    let resources = store.resources_at(workspace_id, last.id)?;
    // The trail as the polls up to that snapshot read it, for `last_acting` and `trail_since`.
    let trail = if any_reads(input.rules, "last_acting") || any_reads(input.rules, "trail_since") {
        store.trail_activity(workspace_id, Some(last.id))?
    } else {
        None
    };
    let evaluated = evaluate(input.rules, &resources, trail, state_at)?;
    let data_flows = data_flows(&resources, last.id, input.flow_patterns);
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
        data_flows,
    })
}

/// The data-flow section from the snapshot's resources, leaving out the kinds that never take
/// part in a flow (users, groups and the like: most of a large workspace).
fn data_flows(
    resources: &[StoredResource],
    snapshot: SnapshotId,
    patterns: &PersonalPatterns,
) -> DataFlows {
    let relevant: Vec<Resource> = resources
        .iter()
        .filter(|r| segwatch_core::flows::stored::FLOW_KINDS.contains(&r.kind))
        .cloned()
        .map(crate::stored::resource)
        .collect();
    DataFlows::new(snapshot, patterns, FlowMap::compute(&relevant, patterns))
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
    trail: Option<TrailActivity>,
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
    let state: Vec<StateResource<'_>> = resources
        .iter()
        .zip(bodies)
        .map(|(r, value)| {
            Ok(StateResource {
                kind: r.kind,
                id: &r.id,
                name: &r.name,
                body: &r.body,
                value,
                seen_since: Some(r.seen_since.as_datetime()),
            })
        })
        .collect::<Result<_, ReportError>>()?;
    let context = SnapshotContext::of_state(rules, &state).with_trail(trail);
    let evaluator = context.evaluator(rules, now);
    for (resource, verdicts) in check_state(&evaluator, &state) {
        for verdict in verdicts {
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
pub(super) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
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
            let opened = a.opened_at.as_datetime();
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
            let resolved_at = a.resolved_at.ok_or_else(|| missing("resolved_at"))?;
            let open_secs = (resolved_at.as_datetime() - a.opened_at.as_datetime())
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
    Timestamp::from(t).to_string()
}
