//! `segwatch rules validate`, `segwatch rules test` and `segwatch rules init`, and loading rules
//! for every command that evaluates them.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::USAGE_ERROR;
use super::args::TextOrJson;
use super::output::{plural, print_json};
use crate::rules::{InitError, RuleSource};
use segwatch_core::ids::SnapshotId;
use segwatch_core::rules::{
    ChangeFacts, Outcome, RuleSet, SnapshotContext, StateResource, Subject, any_reads, check_state,
};
use segwatch_store::Store;

/// Loads rules, turning every load error into one readable report.
pub(super) fn load_rules(source: &RuleSource) -> anyhow::Result<RuleSet> {
    match source.load() {
        Ok(rules) => {
            if rules.rules().is_empty() {
                tracing::warn!("{}", no_rule_warning(source));
            }
            for (rule, exception) in rules.expired_exceptions(chrono::Utc::now()) {
                let what = exception
                    .id
                    .as_deref()
                    .or(exception.name.as_deref())
                    .unwrap_or("?");
                tracing::warn!(rule = %rule.id, exception = %what, expired = ?exception.expires,
                    "an exception of this rule has expired and no longer applies");
            }
            Ok(rules)
        }
        Err(errors) => bail!("invalid rules in {source}:\n{errors}"),
    }
}

/// What an empty rule folder (or file) means: a poll still records and diffs, but nothing can
/// ever raise an alert, which is easy to miss (a wrong `[rules] path`, a folder not yet filled).
pub(super) fn no_rule_warning(source: &RuleSource) -> String {
    format!(
        "no rule in {source}: polls record and diff the workspace but raise no alert; put *.yaml \
         rule files there (`segwatch rules init DIR` writes the starter pack out) or set \
         `rules.path`"
    )
}

/// `segwatch rules validate`: every load error of the rules, or what they hold.
pub(super) fn validate(source: &RuleSource) -> anyhow::Result<ExitCode> {
    match source.load() {
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} in {source}", plural(errors.0.len(), "error"));
            Ok(ExitCode::FAILURE)
        }
        Ok(rules) => {
            let enabled: Vec<_> = rules.rules().iter().filter(|r| r.enabled).collect();
            let change = enabled.iter().filter(|r| r.is_change()).count();
            println!(
                "{source}: {} ({} change, {} compliance; {} disabled)",
                plural(rules.rules().len(), "rule"),
                change,
                enabled.len() - change,
                rules.rules().len() - enabled.len()
            );
            if rules.rules().is_empty() {
                println!("warning: {}", no_rule_warning(source));
            }
            for (rule, exception) in rules.expired_exceptions(chrono::Utc::now()) {
                let what = exception
                    .id
                    .as_deref()
                    .or(exception.name.as_deref())
                    .unwrap_or("?");
                let expired = exception.expires.map(|d| d.to_string()).unwrap_or_default();
                println!(
                    "warning: {}:{}: rule `{}`: exception `{what}` expired on {expired} and no longer applies",
                    rule.file.display(),
                    rule.line,
                    rule.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `segwatch rules test`: the rules on a stored snapshot (default: the latest complete one)
/// and on its changes, as its poll would have evaluated them; records nothing.
pub(super) fn test(
    rules: &RuleSet,
    store: &Store,
    workspace: i64,
    snapshot: Option<i64>,
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    let snapshot = match snapshot {
        Some(id) => SnapshotId(id),
        None => store
            .latest_complete(workspace)?
            .context("no complete snapshot yet: run `segwatch poll`")?,
    };
    let resources = store.resources_at(workspace, snapshot)?;
    let state: Vec<StateResource<'_>> = resources
        .iter()
        .map(|r| {
            Ok(StateResource {
                kind: r.kind,
                id: &r.id,
                name: &r.name,
                body: &r.body,
                value: serde_json::from_str(&r.body)?,
                seen_since: Some(r.seen_since.as_datetime()),
            })
        })
        .collect::<Result<_, serde_json::Error>>()?;
    // `last_acting` and `trail_since` as the polls up to that snapshot read the trail.
    let trail = if any_reads(rules, "last_acting") || any_reads(rules, "trail_since") {
        store.trail_activity(workspace, Some(snapshot))?
    } else {
        None
    };
    let context = SnapshotContext::of_state(rules, &state).with_trail(trail);
    let evaluator = context.evaluator(rules, chrono::Utc::now());
    let mut results = Vec::new();
    let mut record =
        |kind: &str,
         verdicts: Vec<segwatch_core::rules::Verdict<'_>>,
         resource: (&segwatch_core::model::ResourceKind, &str, &str)| {
            for v in verdicts {
                let (outcome, detail) = match v.outcome {
                    Outcome::Pass => continue,
                    Outcome::Fire { summary, .. } => ("fires", summary),
                    Outcome::Exempt { reason } => ("exempt", reason),
                    Outcome::Error { message } => ("error", message),
                };
                results.push(serde_json::json!({
                "rule": v.rule.id, "severity": v.rule.severity.as_str(), "on": kind, "outcome": outcome,
                "resource_kind": resource.0.as_str(), "resource_id": resource.1, "resource_name": resource.2, "detail": detail,
            }));
            }
        };
    for (r, verdicts) in check_state(&evaluator, &state) {
        record("resource", verdicts, (&r.kind, r.id, r.name));
    }
    for segwatch_store::ChangeWithBodies {
        change,
        before,
        after,
    } in store.change_bodies(snapshot)?
    {
        // As in a poll: change rules never see API drift.
        if segwatch_core::drift::is_drift_only(&change) {
            continue;
        }
        let body = after
            .as_ref()
            .or(before.as_ref())
            .context("a stored change has no version")?;
        let subject = Subject {
            kind: change.kind,
            id: &change.resource_id,
            name: &change.name,
            body,
            seen_since: None,
        };
        let facts = ChangeFacts {
            op: change.op,
            before: before.as_ref(),
            after: after.as_ref(),
            fields: &segwatch_core::drift::real_fields(&change.fields),
            attribution: &change.attribution,
        };
        record(
            "change",
            evaluator.check_change(&subject, &facts),
            (&change.kind, &change.resource_id, &change.name),
        );
    }
    let mut out = std::io::stdout().lock();
    if format == TextOrJson::Json {
        return print_json(
            &mut out,
            &serde_json::json!({"snapshot": snapshot, "results": results}),
        );
    }
    let fires = results.iter().filter(|r| r["outcome"] == "fires").count();
    writeln!(
        out,
        "dry run of {} on snapshot {snapshot}: {} would fire (nothing recorded)",
        plural(rules.rules().len(), "rule"),
        fires
    )?;
    for r in &results {
        writeln!(
            out,
            "{:<7} [{}] {} on {} {}: {}",
            r["outcome"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or("").to_uppercase(),
            r["rule"].as_str().unwrap_or(""),
            r["resource_kind"].as_str().unwrap_or(""),
            r["resource_name"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `segwatch rules init DIR [--force]`: writes the starter pack into `dir` for editing and
/// prints each file written; refuses (exit 2, nothing written) when one of its files exists
/// there, unless `force`.
pub(super) fn init(dir: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let written = match crate::rules::init(dir, force) {
        Ok(written) => written,
        Err(e @ InitError::Exists { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    for file in &written {
        let verb = if file.replaced { "replaced" } else { "wrote" };
        writeln!(out, "{verb} {}", file.path.display())?;
    }
    writeln!(
        out,
        "the starter pack is in {}: edit it (its README.md says what to change first), check it \
         with `segwatch rules validate {0}`, and set `rules.path` to it",
        dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
