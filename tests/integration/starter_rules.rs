//! The starter rule pack in `rules/`: it loads, every rule is documented and tagged, and every
//! rule fires and passes on its cases in `tests/fixtures/starter_rules.yaml` (whose header
//! describes the case format).

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use segwatch_core::activity::TrailActivity;
use segwatch_core::diff::{ChangeOp, FieldChange};
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::relations::Relations;
use segwatch_core::rules::{ChangeFacts, Evaluator, Outcome, Rule, RuleKind, RuleSet, Subject};
use serde::Deserialize;
use serde_json::Value;

/// Evaluation time of the cases that set no `now`, as documented in the fixture file.
const DEFAULT_NOW: &str = "2026-11-24T12:00:00Z";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    rule: String,
    #[serde(default)]
    fires: Vec<Case>,
    #[serde(default)]
    passes: Vec<Case>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CaseKind {
    Change,
    Resource,
}

/// One evaluation: a change (`op`, `before`, `after`, `fields`) or a resource (`body`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    kind: CaseKind,
    op: Option<ChangeOp>,
    before: Option<Value>,
    after: Option<Value>,
    #[serde(default)]
    fields: Vec<FieldChange>,
    body: Option<Value>,
    id: Option<String>,
    name: Option<String>,
    seen_since: Option<DateTime<Utc>>,
    inventory: Option<Value>,
    /// The other resources of the snapshot, for `related` (default: none).
    #[serde(default)]
    related: Vec<RelatedResource>,
    now: Option<DateTime<Utc>>,
    /// Since when the audit trail has been read (absent: not read).
    trail_since: Option<DateTime<Utc>>,
    /// The subject user's latest action in the trail (absent: never seen acting).
    last_acting: Option<DateTime<Utc>>,
    note: Option<String>,
}

/// A resource of the case's snapshot, which `related` is built from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedResource {
    kind: ResourceKind,
    body: Value,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_rules() -> RuleSet {
    RuleSet::load(&root().join("rules"))
        .unwrap_or_else(|e| panic!("the starter rules do not load:\n{e}"))
}

fn load_fixtures() -> Vec<Fixture> {
    let path = root().join("tests/fixtures/starter_rules.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn starter_rules_load_and_are_documented() {
    let set = load_rules();
    let enabled: Vec<&Rule> = set.rules().iter().filter(|r| r.enabled).collect();
    assert!(
        enabled.len() >= 14,
        "expected at least 14 enabled starter rules, found {}",
        enabled.len()
    );
    for rule in enabled {
        let at = format!("rule `{}` ({}:{})", rule.id, rule.file.display(), rule.line);
        assert!(!rule.title.trim().is_empty(), "{at} has no title");
        assert!(
            !rule.description.trim().is_empty(),
            "{at} has no description"
        );
        assert!(
            !rule.remediation.trim().is_empty(),
            "{at} has no remediation"
        );
        assert!(!rule.tags.is_empty(), "{at} has no tags");
    }
    let expired = set.expired_exceptions(now(None));
    assert!(
        expired.is_empty(),
        "the starter pack ships expired exceptions"
    );
}

#[test]
fn every_starter_rule_has_fixtures() {
    let set = load_rules();
    let fixtures = load_fixtures();
    let mut by_rule: HashMap<&str, &Fixture> = HashMap::new();
    for fixture in &fixtures {
        assert!(
            set.get(&fixture.rule).is_some(),
            "fixtures name an unknown rule `{}`",
            fixture.rule
        );
        assert!(
            by_rule.insert(&fixture.rule, fixture).is_none(),
            "rule `{}` has two fixture entries",
            fixture.rule
        );
    }
    for rule in set.rules() {
        let fixture = by_rule.get(rule.id.as_str());
        assert!(
            fixture.is_some_and(|f| !f.fires.is_empty() && !f.passes.is_empty()),
            "rule `{}` needs fixtures with at least one `fires` and one `passes` case",
            rule.id
        );
    }
}

#[test]
fn starter_rules_match_their_fixtures() {
    // Rules shipped disabled are checked as if turned on: their fixtures show what they do then.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                dir.path().join(path.file_name().unwrap()),
                text.replace("  enabled: false\n", ""),
            )
            .unwrap();
        }
    }
    let set = RuleSet::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut cases = 0;
    for fixture in load_fixtures() {
        let Some(rule) = set.get(&fixture.rule) else {
            failures.push(format!("unknown rule `{}`", fixture.rule));
            continue;
        };
        for (fires, list) in [(true, &fixture.fires), (false, &fixture.passes)] {
            for (i, case) in list.iter().enumerate() {
                cases += 1;
                if let Err(why) = check_case(&set, rule, case, fires) {
                    let group = if fires { "fires" } else { "passes" };
                    let note = case
                        .note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    failures.push(format!("rule `{}`, {group}[{i}]{note}: {why}", rule.id));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} fixture cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Evaluates one case and checks the rule's outcome against the expectation.
fn check_case(set: &RuleSet, rule: &Rule, case: &Case, fires: bool) -> Result<(), String> {
    let inventory = case.inventory.clone().unwrap_or_else(|| {
        segwatch_core::rules::inventory(std::iter::empty::<(ResourceKind, Value)>())
    });
    let snapshot: Vec<Resource> = case
        .related
        .iter()
        .map(|r| {
            let id = r.body.get("id").and_then(Value::as_str).unwrap_or_default();
            Resource::new(r.kind, id.to_owned(), id.to_owned(), r.body.clone())
        })
        .collect();
    let relations = Relations::build(&snapshot);
    let subject_body = case.body.as_ref().or(case.after.as_ref());
    let trail = match (case.trail_since, subject_body) {
        (Some(since), Some(body)) => {
            let (id, _) = identity(rule.resource, body, case);
            let mut trail = TrailActivity::new(since);
            if let Some(at) = case.last_acting {
                trail.record(&id, body.get("email").and_then(Value::as_str), at);
            }
            Some(trail)
        }
        (None, _) if case.last_acting.is_some() => {
            return Err("`last_acting` needs `trail_since`".into());
        }
        _ => None,
    };
    let mut evaluator = Evaluator::new(set, now(case.now), inventory).with_relations(&relations);
    if let Some(trail) = &trail {
        evaluator = evaluator.with_trail(trail);
    }
    let verdicts = match (case.kind, &rule.kind) {
        (CaseKind::Resource, RuleKind::Compliance) => {
            let body = case.body.as_ref().ok_or("a resource case needs a `body`")?;
            let (id, name) = identity(rule.resource, body, case);
            evaluator.check_resource(&subject(rule.resource, &id, &name, body, case), None)
        }
        (CaseKind::Change, RuleKind::Change { on }) => {
            let op = case.op.ok_or("a change case needs an `op`")?;
            let (before, after) = (case.before.as_ref(), case.after.as_ref());
            let body = match (op, before, after) {
                (ChangeOp::Added, None, Some(body)) => body,
                (ChangeOp::Removed, Some(body), None) => body,
                (ChangeOp::Modified, Some(_), Some(body)) if !case.fields.is_empty() => body,
                _ => return Err(format!("a `{op}` case has the wrong before/after/fields")),
            };
            let (id, name) = identity(rule.resource, body, case);
            let facts = ChangeFacts {
                op,
                before,
                after,
                fields: &case.fields,
                attribution: &Default::default(),
            };
            let verdicts =
                evaluator.check_change(&subject(rule.resource, &id, &name, body, case), &facts);
            if !on.contains(&op) {
                // A rule is not even evaluated for an op outside its `on`, so it cannot fire.
                let evaluated = verdicts.iter().any(|v| v.rule.id == rule.id);
                return match (fires, evaluated) {
                    (false, false) => Ok(()),
                    (true, _) => Err(format!("`{op}` is not in the rule's `on`")),
                    (false, true) => Err(format!("evaluated for `{op}`, which is not in its `on`")),
                };
            }
            verdicts
        }
        (CaseKind::Resource, _) => return Err("a resource case for a change rule".into()),
        (CaseKind::Change, _) => return Err("a change case for a compliance rule".into()),
    };
    let outcome = verdicts
        .into_iter()
        .find(|v| v.rule.id == rule.id)
        .map(|v| v.outcome)
        .ok_or("the rule was not evaluated")?;
    match (fires, outcome) {
        (true, Outcome::Fire { summary, .. }) => match &rule.message {
            // A template that fails to render falls back to "<title>: …".
            Some(_) if summary.starts_with(&format!("{}: ", rule.title)) => {
                Err(format!("its message did not render: summary `{summary}`"))
            }
            _ => Ok(()),
        },
        (false, Outcome::Pass) => Ok(()),
        (_, Outcome::Error { message }) => Err(format!("evaluation error: {message}")),
        (_, Outcome::Exempt { reason }) => Err(format!("exempt ({reason})")),
        (true, Outcome::Pass) => Err("expected Fire, got Pass".into()),
        (false, Outcome::Fire { summary, .. }) => {
            Err(format!("expected Pass, got Fire: {summary}"))
        }
    }
}

fn now(at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    at.unwrap_or_else(|| DEFAULT_NOW.parse().expect("DEFAULT_NOW is RFC 3339"))
}

/// The id and name segwatch's collector gives a resource (unless the case sets them): email for
/// users and invites, `key:value` for labels, the display name for functions, the settings' or
/// catalog name for warehouses, otherwise the name, slug, catalog name or id.
fn identity(kind: ResourceKind, body: &Value, case: &Case) -> (String, String) {
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (id, name) = match kind {
        ResourceKind::Invite => {
            let email = field("email").unwrap_or_default();
            (email.to_owned(), email.to_owned())
        }
        // As alerts name an event: by the resource it affected.
        ResourceKind::AuditEvent => {
            let id = field("id").unwrap_or_default();
            let name = field("resourceName")
                .or_else(|| field("resourceId"))
                .unwrap_or(id);
            (id.to_owned(), name.to_owned())
        }
        // As a poll names an access change: by its grant.
        ResourceKind::Access => {
            let at = |a: &str, b: &str| {
                body.get(a)
                    .and_then(|o| o.get(b))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                format!("{}|{}", at("user", "email"), at("resource", "id")),
                format!(
                    "{}: {} on {}",
                    at("user", "email"),
                    at("role", "name"),
                    at("resource", "name")
                ),
            )
        }
        ResourceKind::Label => {
            let id = format!(
                "{}:{}",
                field("key").unwrap_or_default(),
                field("value").unwrap_or_default()
            );
            (id.clone(), id)
        }
        _ => {
            let id = field("id").unwrap_or_default();
            let nested = |outer: &str, key: &str| {
                body.get(outer)
                    .and_then(|o| o.get(key))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let name = match kind {
                ResourceKind::User => field("email"),
                ResourceKind::Function => field("displayName"),
                ResourceKind::DestinationFilter => field("title"),
                ResourceKind::SourceSchemaSettings => field("sourceId"),
                ResourceKind::Warehouse => {
                    nested("settings", "name").or_else(|| nested("metadata", "name"))
                }
                _ => field("name")
                    .or_else(|| field("slug"))
                    .or_else(|| nested("metadata", "name")),
            };
            (id.to_owned(), name.unwrap_or(id).to_owned())
        }
    };
    (
        case.id.clone().unwrap_or(id),
        case.name.clone().unwrap_or(name),
    )
}

fn subject<'a>(
    kind: ResourceKind,
    id: &'a str,
    name: &'a str,
    body: &'a Value,
    case: &Case,
) -> Subject<'a> {
    Subject {
        kind,
        id,
        name,
        body,
        seen_since: case.seen_since,
    }
}
