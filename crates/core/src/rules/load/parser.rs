//! Checking one rule field by field: each mistake is recorded with its line and field and the
//! check goes on, so that one run reports all of them.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use minijinja::Environment;
use serde_json::json;

use super::{MAX_ID_LEN, is_valid_id};
use crate::diff::ChangeOp;
use crate::model::{ResourceKind, sha256_hex};
use crate::rules::expr::{self, Scope, did_you_mean};
use crate::rules::yaml::{Node, Value};
use crate::rules::{Compiled, LoadError, Rule, RuleKind, Severity};

/// Why a rule on `access` cannot be a compliance rule or watch `modified`.
const ACCESS_OPS: &str = "access changes are grants gained or lost: a rule on `access` is \
                          `kind: change` with `on: [added]`, `[removed]` or both";

/// The fields a rule may have, in the order the spec lists them.
const RULE_FIELDS: [&str; 14] = [
    "id",
    "title",
    "description",
    "remediation",
    "severity",
    "tags",
    "enabled",
    "resource",
    "kind",
    "on",
    "when",
    "message",
    "exceptions",
    "sinks",
];

/// Checks one rule, collecting its errors.
pub(super) struct RuleParser<'a> {
    pub(super) file: &'a Path,
    pub(super) rule_id: Option<String>,
    pub(super) errors: Vec<LoadError>,
}

/// The fields of a mapping by name: the line of the key and the value.
pub(super) type Fields<'n> = HashMap<&'n str, (usize, &'n Node)>;

impl RuleParser<'_> {
    pub(super) fn error(&mut self, line: usize, field: Option<&str>, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: self.file.to_path_buf(),
            line: Some(line),
            rule_id: self.rule_id.clone(),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    /// Indexes a mapping's fields, reporting non-string, repeated and unknown keys.
    /// `path` prefixes field names in errors (`exceptions[0].`), `what` names the mapping.
    pub(super) fn fields<'n>(
        &mut self,
        entries: &'n [(Node, Node)],
        allowed: &[&str],
        path: &str,
        what: &str,
    ) -> Fields<'n> {
        let mut fields: Fields<'n> = HashMap::new();
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                self.error(
                    key.line,
                    None,
                    format!("field names must be text, found {}", key.describe()),
                );
                continue;
            };
            let field = format!("{path}{name}");
            if !allowed.contains(&name) {
                let hint = did_you_mean(name, allowed.iter().copied());
                let message = format!(
                    "unknown field `{name}`{hint}; {what} fields are: {}",
                    allowed.join(", ")
                );
                self.error(key.line, Some(&field), message);
                continue;
            }
            if let Some((first_line, _)) = fields.get(name) {
                let first_line = *first_line;
                self.error(
                    key.line,
                    Some(&field),
                    format!("`{name}` is given twice (first at line {first_line}); keep one"),
                );
                continue;
            }
            fields.insert(name, (key.line, value));
        }
        fields
    }

    /// A string field; reports a wrong type or an empty value (when `required`).
    pub(super) fn string(
        &mut self,
        fields: &Fields<'_>,
        name: &str,
        field: &str,
        required: bool,
    ) -> Option<String> {
        let (line, node) = *fields.get(name)?;
        match &node.value {
            Value::Str(s) if required && s.trim().is_empty() => {
                self.error(
                    line,
                    Some(field),
                    format!("`{name}` is empty; it is required"),
                );
                None
            }
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.error(
                    line,
                    Some(field),
                    format!("expected text, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub(super) fn parse(
        &mut self,
        item: &Node,
        templates: &mut Environment<'static>,
        sequence: usize,
    ) -> Option<Rule> {
        let Value::Map(entries) = &item.value else {
            self.error(
                item.line,
                None,
                format!(
                    "each rule must be a mapping of fields (`id: …`, `title: …`, …); found {}",
                    item.describe()
                ),
            );
            return None;
        };
        // The id first, so that every other error can name the rule.
        if let Some((_, id)) = entries.iter().find(|(k, _)| k.as_str() == Some("id"))
            && let Some(id) = id.as_str()
        {
            self.rule_id = Some(id.to_string());
        }
        let fields = self.fields(entries, &RULE_FIELDS, "", "a rule's");
        for required in [
            "id",
            "title",
            "description",
            "remediation",
            "severity",
            "resource",
            "kind",
            "when",
        ] {
            if !fields.contains_key(required) {
                self.error(
                    item.line,
                    Some(required),
                    format!(
                        "missing required field `{required}`{}",
                        required_hint(required)
                    ),
                );
            }
        }

        let id = self.string(&fields, "id", "id", true);
        if let (Some(id), Some((line, _))) = (&id, fields.get("id"))
            && !is_valid_id(id)
        {
            self.error(
                *line,
                Some("id"),
                format!(
                    "`{id}` is not a valid rule id: use lowercase letters, digits and `-`, \
                     starting with a letter or digit, at most {MAX_ID_LEN} characters \
                     (e.g. `workspace-owner-granted`)"
                ),
            );
        }
        let title = self.string(&fields, "title", "title", true);
        let description = self.string(&fields, "description", "description", true);
        let remediation = self.string(&fields, "remediation", "remediation", true);
        let severity = self.severity(&fields);
        let resource = self.resource(&fields);
        let kind = self.kind(&fields);
        // Kinds that are only ever changes of some ops: audit events are read once, access
        // changes are grants gained or lost.
        let refused = match (resource, kind.as_ref()) {
            (Some(ResourceKind::AuditEvent), Some(k))
                if *k
                    != (RuleKind::Change {
                        on: vec![ChangeOp::Added],
                    }) =>
            {
                Some(
                    "audit events are only ever added (each is read once, never edited): a rule \
                     on `audit_event` is `kind: change` with `on: [added]`",
                )
            }
            (Some(ResourceKind::Access), Some(RuleKind::Compliance)) => Some(ACCESS_OPS),
            (Some(ResourceKind::Access), Some(RuleKind::Change { on }))
                if on.contains(&ChangeOp::Modified) =>
            {
                Some(ACCESS_OPS)
            }
            _ => None,
        };
        if let Some(message) = refused {
            let line = fields
                .get("on")
                .or(fields.get("kind"))
                .map_or(item.line, |f| f.0);
            self.error(line, Some("kind"), message);
        }
        let tags = self.string_list(&fields, "tags", "tags: [soc2:CC6.1]");
        let sinks = self.string_list(&fields, "sinks", "sinks: [security-slack]");
        let enabled = self.enabled(&fields);
        let scope = match &kind {
            Some(RuleKind::Change { .. }) => Scope::Change,
            Some(RuleKind::Compliance) => Scope::Compliance,
            None => Scope::Unknown,
        };
        let when = self.string(&fields, "when", "when", true);
        let condition = match (&when, fields.get("when")) {
            (Some(when), Some((line, _))) => match expr::compile(when, scope) {
                Ok(condition) => Some(condition),
                Err(messages) => {
                    for message in messages {
                        self.error(*line, Some("when"), message);
                    }
                    None
                }
            },
            _ => None,
        };
        let message = self.string(&fields, "message", "message", false);
        let template = match (&message, fields.get("message")) {
            (Some(message), Some((line, _))) => {
                let name = format!("{}#{sequence}", id.as_deref().unwrap_or("rule"));
                self.template(templates, &name, message, *line, scope)
                    .then_some(name)
            }
            _ => None,
        };
        let (exceptions, exception_globs) = self.exceptions(&fields);

        if !self.errors.is_empty() {
            return None;
        }
        let mut rule = Rule {
            id: id?,
            title: title?,
            description: description?,
            remediation: remediation?,
            severity: severity?,
            tags,
            sinks,
            enabled,
            resource: resource?,
            kind: kind?,
            when: when?,
            message,
            exceptions,
            file: self.file.to_path_buf(),
            line: item.line,
            compiled: Arc::new(Compiled {
                condition: condition?,
                template,
                exception_globs,
                fingerprint: String::new(),
            }),
        };
        let fingerprint = fingerprint(&rule);
        Arc::get_mut(&mut rule.compiled)
            .expect("the rule was just built")
            .fingerprint = fingerprint;
        Some(rule)
    }

    fn severity(&mut self, fields: &Fields<'_>) -> Option<Severity> {
        let value = self.string(fields, "severity", "severity", true)?;
        match Severity::from_str(&value) {
            Ok(severity) => Some(severity),
            Err(e) => {
                let line = fields["severity"].0;
                let hint = did_you_mean(&value, Severity::ALL.iter().map(|s| s.as_str()));
                self.error(line, Some("severity"), format!("{e}{hint}"));
                None
            }
        }
    }

    fn resource(&mut self, fields: &Fields<'_>) -> Option<ResourceKind> {
        let value = self.string(fields, "resource", "resource", true)?;
        match ResourceKind::from_str(&value) {
            Ok(kind) => Some(kind),
            Err(e) => {
                let line = fields["resource"].0;
                let kinds = ResourceKind::ALL
                    .iter()
                    .chain([&ResourceKind::AuditEvent, &ResourceKind::Access]);
                let hint = did_you_mean(&value, kinds.map(|k| k.as_str()));
                self.error(line, Some("resource"), format!("{e}{hint}"));
                None
            }
        }
    }

    /// `kind` together with `on`, which only change rules have.
    fn kind(&mut self, fields: &Fields<'_>) -> Option<RuleKind> {
        let kind = self.string(fields, "kind", "kind", true);
        let kind_line = fields.get("kind").map(|(line, _)| *line);
        let change = match kind.as_deref() {
            Some("change") => Some(true),
            Some("compliance") => Some(false),
            Some(other) => {
                let hint = did_you_mean(other, ["change", "compliance"].into_iter());
                self.error(
                    kind_line.unwrap_or_default(),
                    Some("kind"),
                    format!(
                        "`{other}` is not a rule kind{hint}; expected `change` (evaluated on each \
                         change) or `compliance` (evaluated on every resource)"
                    ),
                );
                None
            }
            None => None,
        };
        let on = fields.get("on").copied();
        match (change, on) {
            (Some(false), Some((line, _))) => {
                self.error(
                    line,
                    Some("on"),
                    "`on` is only for change rules (kind: change); a compliance rule is evaluated \
                     on every resource, so remove `on` or make it a change rule",
                );
                None
            }
            (Some(false), None) => Some(RuleKind::Compliance),
            (Some(true), None) => {
                self.error(
                    kind_line.unwrap_or_default(),
                    Some("on"),
                    "a change rule needs `on`, the changes it applies to: a list of added, \
                     removed, modified (e.g. `on: [added, modified]`)",
                );
                None
            }
            (change, Some((line, node))) => {
                let on = self.ops(line, node)?;
                change.map(|_| RuleKind::Change { on })
            }
            (None, None) => None,
        }
    }

    fn ops(&mut self, line: usize, node: &Node) -> Option<Vec<ChangeOp>> {
        let Value::Seq(items) = &node.value else {
            self.error(
                line,
                Some("on"),
                format!(
                    "expected a list of added, removed, modified (e.g. `on: [added, modified]`); \
                     found {}",
                    node.describe()
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                line,
                Some("on"),
                "`on` is empty; list at least one of added, removed, modified",
            );
            return None;
        }
        let mut ops = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("on[{i}]");
            let Some(text) = item.as_str() else {
                self.error(
                    item.line,
                    Some(&field),
                    format!(
                        "expected added, removed or modified; found {}",
                        item.describe()
                    ),
                );
                ok = false;
                continue;
            };
            match ChangeOp::from_str(text) {
                Ok(op) if !ops.contains(&op) => ops.push(op),
                Ok(_) => {}
                Err(_) => {
                    let hint = did_you_mean(text, ["added", "removed", "modified"].into_iter());
                    self.error(
                        item.line,
                        Some(&field),
                        format!(
                            "`{text}` is not a change operation{hint}; expected added, removed \
                             or modified"
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(ops)
    }

    /// An optional list of strings (`tags`, `sinks`).
    fn string_list(&mut self, fields: &Fields<'_>, field: &str, example: &str) -> Vec<String> {
        let Some((line, node)) = fields.get(field).copied() else {
            return Vec::new();
        };
        let Value::Seq(items) = &node.value else {
            self.error(
                line,
                Some(field),
                format!(
                    "expected a list (e.g. `{example}`); found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text) => out.push(text.to_string()),
                None => self.error(
                    item.line,
                    Some(&format!("{field}[{i}]")),
                    format!("expected text, found {}; quote it", item.describe()),
                ),
            }
        }
        out
    }

    fn enabled(&mut self, fields: &Fields<'_>) -> bool {
        let Some((line, node)) = fields.get("enabled").copied() else {
            return true;
        };
        match node.value {
            Value::Bool(b) => b,
            _ => {
                self.error(
                    line,
                    Some("enabled"),
                    format!("expected true or false, found {}", node.describe()),
                );
                true
            }
        }
    }
}

/// What to write for a missing required field.
fn required_hint(field: &str) -> &'static str {
    match field {
        "id" => " (a unique name such as `workspace-owner-granted`)",
        "severity" => " (info, low, medium, high or critical)",
        "resource" => {
            " (workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan, destination_filter, destination_subscription, source_schema_settings, transformation, reverse_etl_model or audit_event)"
        }
        "kind" => " (change or compliance)",
        "when" => " (a CEL condition)",
        _ => "",
    }
}

/// Hex SHA-256 of a canonical JSON of everything that affects a rule's results.
fn fingerprint(rule: &Rule) -> String {
    let on: Option<Vec<&str>> = match &rule.kind {
        RuleKind::Change { on } => {
            // The order of `on` does not change what the rule does.
            let mut on: Vec<&str> = on.iter().map(|op| op.as_str()).collect();
            on.sort_unstable();
            Some(on)
        }
        RuleKind::Compliance => None,
    };
    // serde_json sorts object keys, so this text is canonical.
    let definition = json!({
        "id": rule.id,
        "kind": rule.kind.as_str(),
        "resource": rule.resource.as_str(),
        "on": on,
        "when": rule.when,
        "message": rule.message,
        "severity": rule.severity.as_str(),
        "title": rule.title,
        "description": rule.description,
        "remediation": rule.remediation,
        "tags": rule.tags,
        "enabled": rule.enabled,
        "exceptions": rule.exceptions,
    });
    sha256_hex(definition.to_string().as_bytes())
}
