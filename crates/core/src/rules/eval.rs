//! Evaluating compiled rules against resources and changes.
//!
//! An [`Evaluator`] holds one root CEL context (standard library, helpers, `now`, `inventory`),
//! built once per poll. Each subject gets an inner scope with its own variables, its body
//! converted to a CEL value once (borrowing the JSON's strings), and all of its kind's rules
//! are evaluated in that scope.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::Val;
use cel::objects::Key;
use cel::{Context, ExecutionError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::expr;
use super::{Rule, RuleKind, RuleSet};
use crate::activity::TrailActivity;
use crate::diff::{ChangeOp, FieldChange};
use crate::model::{Attribution, ResourceKind};
use crate::relations::Relations;

/// How many characters of JSON an explanation value may take before it is shortened.
const VALUE_LIMIT: usize = 200;

/// One resource to evaluate rules on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its kind: selects the rules.
    pub kind: ResourceKind,
    /// Segment's id (`id` in CEL; exceptions match it exactly).
    pub id: &'a str,
    /// Display name, email for users and invites (`name` in CEL; exception globs match it).
    pub name: &'a str,
    /// The body (`resource` in CEL): for a change, after it, or before it when removed.
    pub body: &'a Value,
    /// When segwatch first saw this version (`seen_since` in CEL; `null` when unknown).
    pub seen_since: Option<DateTime<Utc>>,
}

/// What changed, for change rules.
#[derive(Debug, Clone, Copy)]
pub struct ChangeFacts<'a> {
    /// Added, removed or modified: selects the rules by their `on`.
    pub op: ChangeOp,
    /// The body before (`before` in CEL, `null` when added).
    pub before: Option<&'a Value>,
    /// The body after (`after` in CEL, `null` when removed).
    pub after: Option<&'a Value>,
    /// The field-level changes (`change.fields`, and their paths `change.paths`).
    pub fields: &'a [FieldChange],
    /// Who made the change, from the audit trail (`change.actor`, `change.actor_email`,
    /// `change.event_type`, `change.event_id`; null when unknown).
    pub attribution: &'a Attribution,
}

/// A rule's result for one subject.
#[derive(Debug, Clone)]
pub struct Verdict<'r> {
    /// The rule evaluated.
    pub rule: &'r Rule,
    /// What came of it.
    pub outcome: Outcome,
}

/// What came of evaluating a rule on a subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The condition is false.
    Pass,
    /// The condition is true and no active exception matches.
    Fire {
        /// One line: the rendered `message`, or `"<title>: <name>"`.
        summary: String,
        /// `{"condition", "values": [{expr, value}…], "changes"?}`: what the condition read.
        explanation: Value,
    },
    /// The condition is true, but an active (unexpired at `now`) exception matches.
    Exempt {
        /// The exception's reason.
        reason: String,
    },
    /// The condition could not be evaluated (a missing field, a wrong type…); never fires.
    Error {
        /// What went wrong, in CEL's words.
        message: String,
    },
}

/// Evaluates a rule set at one point in time; build one per poll.
pub struct Evaluator<'r> {
    rules: &'r RuleSet,
    now: DateTime<Utc>,
    root: Context<'static, 'static>,
    /// Enabled compliance rules, by [`kind_index`].
    compliance: [Vec<&'r Rule>; ResourceKind::COUNT],
    /// Enabled change rules, by [`kind_index`].
    change: [Vec<&'r Rule>; ResourceKind::COUNT],
    /// The snapshot's relationships, for the `related` variable (empty maps without them).
    relations: Option<&'r Relations<'r>>,
    /// Who acted in the audit trail, for `last_acting` and `trail_since` (`null` without it).
    trail: Option<&'r TrailActivity>,
}

fn kind_index(kind: ResourceKind) -> usize {
    kind.index()
}

impl<'r> Evaluator<'r> {
    /// Prepares the rules for evaluation at `now`, with the snapshot's [`inventory`].
    pub fn new(rules: &'r RuleSet, now: DateTime<Utc>, inventory: Value) -> Self {
        let mut root = Context::with_env(expr::environment());
        root.add_variable_as_val("now", Box::new(CelTimestamp::from(now.fixed_offset())));
        root.add_variable_as_val("inventory", owned_val(&inventory));
        root.add_variable_as_val("trail_since", Box::new(CelNull));
        let mut compliance: [Vec<&'r Rule>; ResourceKind::COUNT] = Default::default();
        let mut change: [Vec<&'r Rule>; ResourceKind::COUNT] = Default::default();
        for rule in rules.rules().iter().filter(|r| r.enabled) {
            let by_kind = if rule.is_change() {
                &mut change
            } else {
                &mut compliance
            };
            by_kind[kind_index(rule.resource)].push(rule);
        }
        Evaluator {
            rules,
            now,
            root,
            compliance,
            change,
            relations: None,
            trail: None,
        }
    }

    /// Gives rules `trail_since` and `last_acting` from what the audit trail shows; without it
    /// (the trail not read) both are `null`, and a rule about inactivity must not fire.
    pub fn with_trail(mut self, trail: &'r TrailActivity) -> Self {
        self.root.add_variable_as_val(
            "trail_since",
            Box::new(CelTimestamp::from(trail.read_since.fixed_offset())),
        );
        self.trail = Some(trail);
        self
    }

    /// Binds `last_acting` when one of `rules` reads it: for a user, the latest audit event
    /// whose actor is the user (by id, or by email); `null` for other kinds, for a user never
    /// seen acting, and when the trail was not read.
    fn bind_last_acting(
        &self,
        scope: &mut Context<'_, '_>,
        subject: &Subject<'_>,
        rules: &[&Rule],
    ) {
        if !rules.iter().any(|r| r.reads("last_acting")) {
            return;
        }
        let at = match (self.trail, subject.kind) {
            (Some(trail), ResourceKind::User) => {
                let email = subject.body.get("email").and_then(Value::as_str);
                trail.last_acting(subject.id, email)
            }
            _ => None,
        };
        let value: Box<dyn Val> = match at {
            Some(t) => Box::new(CelTimestamp::from(t.fixed_offset())),
            None => Box::new(CelNull),
        };
        scope.add_variable_as_val("last_acting", value);
    }

    /// Gives rules the `related` variable from the snapshot's `relations`; without them every
    /// subject's `related` has its kind's keys with nothing in them.
    pub fn with_relations(mut self, relations: &'r Relations<'r>) -> Self {
        self.relations = Some(relations);
        self
    }

    /// Binds `related` when one of `rules` reads it (building it parses related bodies).
    fn bind_related(&self, scope: &mut Context<'_, '_>, subject: &Subject<'_>, rules: &[&Rule]) {
        if !rules.iter().any(|r| r.reads("related")) {
            return;
        }
        let value = match self.relations {
            Some(relations) => relations.related(subject.kind, subject.id, subject.body),
            None => Relations::default().related(subject.kind, subject.id, &Value::Null),
        };
        scope.add_variable_as_val("related", owned_val(&value));
    }

    /// Enabled compliance rules for `subject.kind` (only those whose id is in `only`, when given).
    pub fn check_resource(&self, subject: &Subject<'_>, only: Option<&[&str]>) -> Vec<Verdict<'r>> {
        let rules: Vec<&'r Rule> = self.compliance[kind_index(subject.kind)]
            .iter()
            .filter(|r| only.is_none_or(|ids| ids.contains(&r.id.as_str())))
            .copied()
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let mut scope = self.scope_for(subject);
        bind_subject(&mut scope, subject, &rules);
        self.bind_related(&mut scope, subject, &rules);
        self.bind_last_acting(&mut scope, subject, &rules);
        rules
            .into_iter()
            .map(|rule| Verdict {
                rule,
                outcome: self.evaluate(rule, &scope, subject, None),
            })
            .collect()
    }

    /// Enabled change rules for `subject.kind` whose `on` contains `change.op`.
    pub fn check_change(
        &self,
        subject: &Subject<'_>,
        change: &ChangeFacts<'_>,
    ) -> Vec<Verdict<'r>> {
        let rules: Vec<&'r Rule> = self.change[kind_index(subject.kind)]
            .iter()
            .filter(|r| matches!(&r.kind, RuleKind::Change { on } if on.contains(&change.op)))
            .copied()
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let change_value = change_value(change);
        let mut scope = self.scope_for(subject);
        bind_subject(&mut scope, subject, &rules);
        self.bind_related(&mut scope, subject, &rules);
        self.bind_last_acting(&mut scope, subject, &rules);
        scope.add_variable_as_val("before", change.before.map_or_else(null, borrowed_val));
        scope.add_variable_as_val("after", change.after.map_or_else(null, borrowed_val));
        scope.add_variable_as_val("change", borrowed_val(&change_value));
        let facts = ChangeContext {
            facts: change,
            value: &change_value,
        };
        rules
            .into_iter()
            .map(|rule| Verdict {
                rule,
                outcome: self.evaluate(rule, &scope, subject, Some(&facts)),
            })
            .collect()
    }

    /// A child scope of the root whose values may borrow for `'a`, the subject's lifetime.
    fn scope_for<'s, 'a>(&'s self, _subject: &Subject<'a>) -> Context<'s, 'a> {
        // `Context` is covariant: the root's `'static` values outlive the subject's.
        let root: &'s Context<'s, 'a> = &self.root;
        root.new_inner_scope()
    }

    fn evaluate(
        &self,
        rule: &Rule,
        scope: &Context<'_, '_>,
        subject: &Subject<'_>,
        change: Option<&ChangeContext<'_>>,
    ) -> Outcome {
        let program = &rule.compiled.condition.program;
        // The interpreter is young; a panic in it must cost one verdict, not the poll.
        let result = match catch_unwind(AssertUnwindSafe(|| program.execute(scope))) {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Outcome::Error {
                    message: format!("the CEL interpreter failed: {what}"),
                };
            }
        };
        match result {
            Ok(cel::Value::Bool(false)) => Outcome::Pass,
            Ok(cel::Value::Bool(true)) => {
                match rule.active_exception(subject.id, subject.name, self.now) {
                    Some(exception) => Outcome::Exempt {
                        reason: exception.reason.clone(),
                    },
                    None => Outcome::Fire {
                        summary: self.summary(rule, subject, change),
                        explanation: explanation(rule, scope, change),
                    },
                }
            }
            Ok(other) => Outcome::Error {
                message: format!(
                    "the condition must be true or false, but it gave {} {}",
                    type_name(&other),
                    shorten(value_to_json(&other))
                ),
            },
            Err(e) => Outcome::Error {
                message: error_message(&e),
            },
        }
    }

    fn summary(
        &self,
        rule: &Rule,
        subject: &Subject<'_>,
        change: Option<&ChangeContext<'_>>,
    ) -> String {
        let fallback = || format!("{}: {}", rule.title, subject.name);
        let Some(name) = &rule.compiled.template else {
            return fallback();
        };
        let rendered = self
            .rules
            .templates
            .get_template(name)
            .and_then(|template| template.render(template_context(rule, subject, change)));
        match rendered {
            Ok(text) => {
                let line = one_line(&text);
                if line.is_empty() { fallback() } else { line }
            }
            Err(e) => {
                tracing::warn!(
                    rule = %rule.id,
                    resource = %subject.id,
                    error = %e,
                    "rule message template failed; using the default summary"
                );
                fallback()
            }
        }
    }
}

/// A change with its CEL-facing JSON (`change` in CEL), built once per change.
struct ChangeContext<'a> {
    facts: &'a ChangeFacts<'a>,
    value: &'a Value,
}

/// Binds the subject's variables; its body (`resource`) only when one of `rules` reads it:
/// converting a body costs more than evaluating a rule that does not look at it, such as
/// `user-not-seen-acting` on every user at every poll.
fn bind_subject<'a>(scope: &mut Context<'_, 'a>, subject: &Subject<'a>, rules: &[&Rule]) {
    if rules.iter().any(|r| r.reads("resource")) {
        scope.add_variable_as_val("resource", borrowed_val(subject.body));
    }
    scope.add_variable_as_val("id", Box::new(CelString::from(subject.id)));
    scope.add_variable_as_val("name", Box::new(CelString::from(subject.name)));
    let seen_since: Box<dyn Val> = match subject.seen_since {
        Some(t) => Box::new(CelTimestamp::from(t.fixed_offset())),
        None => Box::new(CelNull),
    };
    scope.add_variable_as_val("seen_since", seen_since);
}

fn null<'v>() -> Box<dyn Val + 'v> {
    Box::new(CelNull)
}

/// `change` as CEL sees it: `{op, paths, fields: [{path, old, new}], actor, actor_email,
/// event_type, event_id}`, absent values as null.
fn change_value(change: &ChangeFacts<'_>) -> Value {
    let who = change.attribution;
    json!({
        "actor": who.actor,
        "actor_email": who.actor_email,
        "event_type": who.event_type,
        "event_id": who.event_id,
        "op": change.op.as_str(),
        "paths": change.fields.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        "fields": change.fields.iter().map(|f| json!({
            "path": f.path,
            "old": f.old.clone().unwrap_or(Value::Null),
            "new": f.new.clone().unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
    })
}

/// CEL's message, with a hint for the most common mistake: reading a field that is absent.
fn error_message(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(key) => format!(
            "{e}: the field `{key}` is absent here; test fields that may be absent with has(), \
             e.g. `has(x.{key}) && …`"
        ),
        _ => e.to_string(),
    }
}

fn type_name(value: &cel::Value) -> String {
    match value {
        cel::Value::Null => "null".to_string(),
        other => format!("a {}", other.type_of()),
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations and summaries

fn explanation(rule: &Rule, scope: &Context<'_, '_>, change: Option<&ChangeContext<'_>>) -> Value {
    let values: Vec<Value> = rule
        .compiled
        .condition
        .probes
        .iter()
        .map(|probe| match cel::Value::resolve_val(&probe.expr, scope) {
            Ok(value) => json!({"expr": probe.text, "value": preview(value.as_ref(), VALUE_LIMIT)}),
            Err(e) => json!({"expr": probe.text, "error": e.to_string()}),
        })
        .collect();
    let mut out = json!({"condition": rule.when, "values": values});
    if let Some(change) = change {
        out["changes"] = change
            .facts
            .fields
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "old": shorten(f.old.clone().unwrap_or(Value::Null)),
                    "new": shorten(f.new.clone().unwrap_or(Value::Null)),
                })
            })
            .collect();
    }
    out
}

/// A CEL value as JSON of about `limit` characters at most, converting only what is kept: a
/// long string is cut, a long list keeps its first elements, a big map its first keys (in
/// order), each followed by how many more there were. A rule may read a list of every user of
/// the workspace; its explanation must not cost a copy of it.
fn preview(value: &dyn Val, limit: usize) -> Value {
    if let Some(s) = value.downcast_ref::<CelString>() {
        return shorten_string(s.inner(), limit);
    }
    if let Some(list) = value.downcast_ref::<CelList>() {
        let items = list.inner();
        let mut kept = Vec::new();
        let mut used = 2;
        for item in items {
            let item = preview(item.as_ref(), limit.saturating_sub(used).max(MIN_PART));
            let len = json_len(&item) + 1;
            if used + len > limit && !kept.is_empty() {
                break;
            }
            used += len;
            kept.push(item);
        }
        let more = items.len() - kept.len();
        if more > 0 {
            kept.push(Value::String(format!("… {more} more")));
        }
        return Value::Array(kept);
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        let mut keys: Vec<&CelMapKey> = map.inner().keys().collect();
        // Only the first keys can fit: select them without sorting the rest.
        if keys.len() > MAX_KEYS {
            keys.select_nth_unstable(MAX_KEYS);
            keys.truncate(MAX_KEYS);
        }
        keys.sort_unstable();
        let mut out = serde_json::Map::new();
        let mut used = 2;
        for key in keys {
            let name = match key {
                CelMapKey::String(s) => s.inner().to_string(),
                CelMapKey::Int(i) => i.inner().to_string(),
                CelMapKey::UInt(u) => u.inner().to_string(),
                CelMapKey::Bool(b) => b.inner().to_string(),
            };
            let item = preview(
                map.inner()[key].as_ref(),
                limit.saturating_sub(used + name.len()).max(MIN_PART),
            );
            let len = name.chars().count() + 4 + json_len(&item);
            if used + len > limit && !out.is_empty() {
                break;
            }
            used += len;
            out.insert(name, item);
        }
        let more = map.inner().len() - out.len();
        if more > 0 {
            out.insert("…".to_string(), Value::String(format!("{more} more")));
        }
        return Value::Object(out);
    }
    match cel::Value::try_from(value) {
        Ok(value) => shorten(value_to_json(&value)),
        Err(e) => Value::String(format!("<{e}>")),
    }
}

/// Keys of a map an explanation may show; more cannot fit in [`VALUE_LIMIT`] anyway.
const MAX_KEYS: usize = 32;

/// The least room given to one element of a shortened list or map.
const MIN_PART: usize = 24;

fn json_len(value: &Value) -> usize {
    value.to_string().chars().count()
}

fn shorten_string(text: &str, limit: usize) -> Value {
    if text.chars().count() <= limit {
        Value::String(text.to_string())
    } else {
        Value::String(cut(text, limit))
    }
}

/// Shortens a value whose JSON exceeds [`VALUE_LIMIT`] characters: a string is cut, a list
/// keeps its first elements and says how many more there were, anything else becomes its
/// JSON text, cut.
fn shorten(value: Value) -> Value {
    let text = value.to_string();
    if text.chars().count() <= VALUE_LIMIT {
        return value;
    }
    match value {
        Value::String(s) => Value::String(cut(&s, VALUE_LIMIT)),
        Value::Array(items) => {
            let total = items.len();
            let mut kept = Vec::new();
            let mut used = 2;
            for item in items {
                let item = shorten(item);
                let len = item.to_string().chars().count() + 1;
                if used + len > VALUE_LIMIT && !kept.is_empty() {
                    break;
                }
                used += len;
                kept.push(item);
            }
            let more = total - kept.len();
            if more > 0 {
                kept.push(Value::String(format!("… {more} more")));
            }
            Value::Array(kept)
        }
        _ => Value::String(cut(&text, VALUE_LIMIT)),
    }
}

fn cut(text: &str, limit: usize) -> String {
    let mut out: String = text.chars().take(limit).collect();
    out.push('…');
    out
}

/// Collapses a rendered template to one line: runs of whitespace with a newline become one
/// space.
fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.trim().to_string();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn template_context(
    rule: &Rule,
    subject: &Subject<'_>,
    change: Option<&ChangeContext<'_>>,
) -> minijinja::Value {
    let rule_value = minijinja::Value::from_pairs([
        ("id", minijinja::Value::from(rule.id.as_str())),
        ("title", minijinja::Value::from(rule.title.as_str())),
        ("severity", minijinja::Value::from(rule.severity.as_str())),
    ]);
    let mut pairs = vec![
        ("rule", rule_value),
        ("kind", minijinja::Value::from(subject.kind.as_str())),
        ("id", minijinja::Value::from(subject.id)),
        ("name", minijinja::Value::from(subject.name)),
        ("resource", jinja_value(subject.body)),
    ];
    if let Some(change) = change {
        let side = |v: Option<&Value>| v.map_or(minijinja::Value::from(()), jinja_value);
        pairs.push(("before", side(change.facts.before)));
        pairs.push(("after", side(change.facts.after)));
        pairs.push(("change", jinja_value(change.value)));
    }
    minijinja::Value::from_pairs(pairs)
}

fn jinja_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => minijinja::Value::from(i),
            (None, Some(u)) => minijinja::Value::from(u),
            _ => minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => items.iter().map(jinja_value).collect(),
        Value::Object(map) => {
            minijinja::Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), jinja_value(v))))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON ⇄ CEL

/// A JSON value as CEL, borrowing its strings: the subject's body outlives its scope.
fn borrowed_val<'v>(value: &'v Value) -> Box<dyn Val + 'v> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number_val(n),
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(borrowed_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), borrowed_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

/// A JSON value as CEL, owning its strings (for the root context, which outlives the JSON).
fn owned_val(value: &Value) -> Box<dyn Val + 'static> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number_val(n),
        Value::String(s) => Box::new(CelString::from(s.clone())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(owned_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), owned_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

fn number_val<'v>(n: &serde_json::Number) -> Box<dyn Val + 'v> {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => Box::new(CelInt::from(i)),
        (None, Some(u)) => Box::new(CelUInt::from(u)),
        _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
    }
}

/// A CEL value as JSON, for explanations: timestamps as RFC 3339 (UTC), durations as CEL
/// writes them (`"3600s"`).
pub(crate) fn value_to_json(value: &cel::Value) -> Value {
    match value {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => json!(i),
        cel::Value::UInt(u) => json!(u),
        cel::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        cel::Value::String(s) => Value::String(s.to_string()),
        cel::Value::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        cel::Value::List(items) => Value::Array(items.iter().map(value_to_json).collect()),
        cel::Value::Map(map) => {
            let entries: BTreeMap<String, Value> = map
                .map
                .iter()
                .map(|(k, v)| (key_text(k), value_to_json(v)))
                .collect();
            Value::Object(entries.into_iter().collect())
        }
        cel::Value::Timestamp(t) => Value::String(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
        cel::Value::Duration(d) => Value::String(duration_text(*d)),
        other => Value::String(format!("{other:?}")),
    }
}

fn key_text(key: &Key) -> String {
    match key {
        Key::String(s) => s.to_string(),
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
    }
}

/// A duration as CEL writes one: seconds with the fraction that is there, `"1.5s"`.
fn duration_text(d: chrono::Duration) -> String {
    let nanos = d.num_nanoseconds();
    match nanos {
        Some(n) if n % 1_000_000_000 != 0 => {
            let text = format!("{:.9}", n as f64 / 1e9);
            format!("{}s", text.trim_end_matches('0'))
        }
        _ => format!("{}s", d.num_seconds()),
    }
}

/// Builds the `inventory` variable from a snapshot's resources (kind + body pairs).
///
/// `role_holders` has a key for every role defined in the workspace and for every role name a
/// user holds, each with the holders' emails (sorted; a user without an email is listed by
/// id). `counts` has every kind, zero included.
pub fn inventory(resources: impl IntoIterator<Item = (ResourceKind, Value)>) -> Value {
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, u64> =
        ResourceKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for (kind, body) in resources {
        let body = &body;
        *counts.entry(kind.as_str()).or_default() += 1;
        match kind {
            ResourceKind::Role => {
                if let Some(name) = body.get("name").and_then(Value::as_str) {
                    holders.entry(name.to_string()).or_default();
                }
            }
            ResourceKind::User => {
                let who = body
                    .get("email")
                    .or_else(|| body.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let permissions = body.get("permissions").and_then(Value::as_array);
                for permission in permissions.into_iter().flatten() {
                    if let Some(role) = permission.get("roleName").and_then(Value::as_str) {
                        holders
                            .entry(role.to_string())
                            .or_default()
                            .insert(who.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    json!({"role_holders": holders, "counts": counts})
}
