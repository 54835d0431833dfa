//! Rule files → validated, compiled rules, or every mistake in them.
//!
//! Each file is parsed into a tree of [`Node`]s that know their line, and each rule is checked
//! field by field, so that one run reports every mistake of every rule with its line, instead
//! of the first one serde would stop at.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use globset::GlobBuilder;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::json;

use super::expr::{self, Scope, did_you_mean};
use super::yaml::{self, Node, Value};
use super::{Compiled, Exception, LoadError, LoadErrors, Rule, RuleKind, RuleSet, Severity};
use crate::diff::ChangeOp;
use crate::model::{ResourceKind, sha256_hex};

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

/// The fields an exception may have.
const EXCEPTION_FIELDS: [&str; 4] = ["id", "name", "reason", "expires"];

/// What a message template can read in every rule, and in change rules only.
const TEMPLATE_VARIABLES: [&str; 5] = ["rule", "kind", "id", "name", "resource"];
const CHANGE_TEMPLATE_VARIABLES: [&str; 3] = ["before", "after", "change"];

const MAX_ID_LEN: usize = 64;

/// Loads a rule file or a directory of them.
pub(super) fn load_path(path: &Path) -> Result<RuleSet, LoadErrors> {
    let metadata = fs::metadata(path).map_err(|e| {
        LoadErrors(vec![file_error(
            path,
            format!("cannot read rules from here: {e}"),
        )])
    })?;
    if !metadata.is_dir() {
        return load_sources(vec![(path.to_path_buf(), fs::read_to_string(path))]);
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut visited = HashSet::new();
    find_rule_files(path, &mut visited, &mut files, &mut errors);
    files.sort();
    let sources = files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f);
            (f, text)
        })
        .collect();
    match load_sources(sources) {
        Ok(rules) if errors.is_empty() => Ok(rules),
        Ok(_) => Err(LoadErrors(errors)),
        Err(LoadErrors(more)) => {
            errors.extend(more);
            Err(LoadErrors(errors))
        }
    }
}

/// Collects `*.yaml`/`*.yml` files under `dir`, skipping hidden entries (`.git`, editor
/// files) and directories already visited through a symlink.
fn find_rule_files(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<LoadError>,
) {
    if let Ok(canonical) = dir.canonicalize()
        && !visited.insert(canonical)
    {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(file_error(dir, format!("cannot list this directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(file_error(dir, format!("cannot list this directory: {e}")));
                continue;
            }
        };
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            find_rule_files(&path, visited, files, errors);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            files.push(path);
        }
    }
}

fn file_error(file: &Path, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: None,
        rule_id: None,
        field: None,
        message,
    }
}

/// Loads rule files already read (or that failed to read), in the given order.
pub(super) fn load_sources(
    sources: Vec<(PathBuf, io::Result<String>)>,
) -> Result<RuleSet, LoadErrors> {
    let mut templates = Environment::new();
    // A typo in a template variable should not silently render as nothing: with strict
    // undefined, rendering fails, is logged, and the summary falls back to "<title>: <name>".
    templates.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut errors = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut first_definition: HashMap<String, (PathBuf, usize)> = HashMap::new();
    // Numbers every rule read, valid or not, so that template names never collide.
    let mut sequence = 0;

    for (file, text) in sources {
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                errors.push(file_error(&file, format!("cannot read this file: {e}")));
                continue;
            }
        };
        let mut file_errors = Vec::new();
        let documents = match yaml::parse(&text) {
            Ok(documents) => documents,
            Err(e) => {
                errors.push(LoadError {
                    file: file.clone(),
                    line: e.line,
                    rule_id: None,
                    field: None,
                    message: format!("invalid YAML: {}", e.message),
                });
                continue;
            }
        };
        let mut items = Vec::new();
        for document in documents {
            match document.value {
                Value::Null => {}
                Value::Seq(rules) => items.extend(rules),
                _ => file_errors.push(LoadError {
                    file: file.clone(),
                    line: Some(document.line),
                    rule_id: None,
                    field: None,
                    message: format!(
                        "a rule file must be a YAML list of rules, each starting with `- id: …`; \
                         found {}",
                        document.describe()
                    ),
                }),
            }
        }
        for item in &items {
            let mut parser = RuleParser {
                file: &file,
                rule_id: None,
                errors: Vec::new(),
            };
            sequence += 1;
            let rule = parser.parse(item, &mut templates, sequence);
            if let Some(id) = &parser.rule_id
                && is_valid_id(id)
            {
                match first_definition.get(id) {
                    Some((first_file, first_line)) => parser.errors.push(LoadError {
                        file: file.clone(),
                        line: Some(item.line),
                        rule_id: Some(id.clone()),
                        field: Some("id".to_string()),
                        message: format!(
                            "duplicate rule id `{id}`: already defined at {}:{first_line}; rule \
                             ids must be unique across all rule files",
                            first_file.display()
                        ),
                    }),
                    None => {
                        first_definition.insert(id.clone(), (file.clone(), item.line));
                    }
                }
            }
            match rule {
                Some(rule) if parser.errors.is_empty() => rules.push(rule),
                _ => file_errors.append(&mut parser.errors),
            }
        }
        // Errors of one rule come field by field; present each file top to bottom.
        file_errors.sort_by_key(|e| e.line);
        errors.append(&mut file_errors);
    }

    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    let by_id = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    Ok(RuleSet {
        rules,
        by_id,
        templates: Arc::new(templates),
    })
}

fn is_valid_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks one rule, collecting its errors.
struct RuleParser<'a> {
    file: &'a Path,
    rule_id: Option<String>,
    errors: Vec<LoadError>,
}

/// The fields of a mapping by name: the line of the key and the value.
type Fields<'n> = HashMap<&'n str, (usize, &'n Node)>;

impl RuleParser<'_> {
    fn error(&mut self, line: usize, field: Option<&str>, message: impl Into<String>) {
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
    fn fields<'n>(
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
    fn string(
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

    fn parse(
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
        if resource == Some(ResourceKind::AuditEvent)
            && kind.as_ref().is_some_and(|k| {
                *k != RuleKind::Change {
                    on: vec![ChangeOp::Added],
                }
            })
        {
            let line = fields
                .get("on")
                .or(fields.get("kind"))
                .map_or(item.line, |f| f.0);
            self.error(
                line,
                Some("kind"),
                "audit events are only ever added (each is read once, never edited): a rule on \
                 `audit_event` is `kind: change` with `on: [added]`",
            );
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
                let kinds = ResourceKind::ALL.iter().chain([&ResourceKind::AuditEvent]);
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

    /// Compiles a message template into the rule set's environment; false on error.
    fn template(
        &mut self,
        templates: &mut Environment<'static>,
        name: &str,
        source: &str,
        line: usize,
        scope: Scope,
    ) -> bool {
        if let Err(e) = templates.add_template_owned(name.to_string(), source.to_string()) {
            let at = match e.line() {
                Some(l) if source.trim_end().contains('\n') => {
                    format!(" (line {l} of the template)")
                }
                _ => String::new(),
            };
            let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
            self.error(
                line,
                Some("message"),
                format!("invalid message template: {}{detail}{at}", e.kind()),
            );
            return false;
        }
        let Ok(template) = templates.get_template(name) else {
            return false;
        };
        let globals: HashSet<&str> = templates.globals().map(|(n, _)| n).collect();
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !globals.contains(v.as_str()))
            .collect();
        unknown.sort();
        let available: Vec<&str> = match scope {
            Scope::Compliance => TEMPLATE_VARIABLES.to_vec(),
            _ => TEMPLATE_VARIABLES
                .iter()
                .chain(&CHANGE_TEMPLATE_VARIABLES)
                .copied()
                .collect(),
        };
        let mut ok = true;
        for variable in unknown {
            if available.contains(&variable.as_str()) {
                continue;
            }
            ok = false;
            let message = if CHANGE_TEMPLATE_VARIABLES.contains(&variable.as_str()) {
                format!(
                    "the message template uses `{variable}`, which only change rules have; use \
                     `resource`"
                )
            } else {
                let hint = did_you_mean(&variable, available.iter().copied());
                format!(
                    "the message template uses an unknown variable `{variable}`{hint}; it can \
                     use {}",
                    available.join(", ")
                )
            };
            self.error(line, Some("message"), message);
        }
        if !ok {
            templates.remove_template(name);
        }
        ok
    }

    fn exceptions(
        &mut self,
        fields: &Fields<'_>,
    ) -> (Vec<Exception>, Vec<Option<globset::GlobMatcher>>) {
        let mut exceptions = Vec::new();
        let mut globs = Vec::new();
        let Some((line, node)) = fields.get("exceptions").copied() else {
            return (exceptions, globs);
        };
        let Value::Seq(items) = &node.value else {
            self.error(
                line,
                Some("exceptions"),
                format!(
                    "expected a list of exceptions (`- name: \"…\"` or `- id: …`, each with a \
                     `reason`); found {}",
                    node.describe()
                ),
            );
            return (exceptions, globs);
        };
        for (i, item) in items.iter().enumerate() {
            if let Some((exception, glob)) = self.exception(i, item) {
                exceptions.push(exception);
                globs.push(glob);
            }
        }
        (exceptions, globs)
    }

    fn exception(
        &mut self,
        i: usize,
        item: &Node,
    ) -> Option<(Exception, Option<globset::GlobMatcher>)> {
        let path = format!("exceptions[{i}]");
        let Value::Map(entries) = &item.value else {
            self.error(
                item.line,
                Some(&path),
                format!(
                    "each exception must be a mapping with `id` or `name`, and `reason`; found {}",
                    item.describe()
                ),
            );
            return None;
        };
        let errors_before = self.errors.len();
        let fields = self.fields(
            entries,
            &EXCEPTION_FIELDS,
            &format!("{path}."),
            "an exception's",
        );
        let reason_field = format!("{path}.reason");
        let reason = self.string(&fields, "reason", &reason_field, true);
        if !fields.contains_key("reason") {
            self.error(
                item.line,
                Some(&reason_field),
                "an exception needs a `reason`: why exempting this resource is acceptable",
            );
        }
        let id = match fields.get("id").copied() {
            // Ids are usually letters and digits; one that is all digits reads as a number.
            Some((
                _,
                Node {
                    value: Value::Int(n),
                    ..
                },
            )) => Some(n.to_string()),
            Some(_) => self.string(&fields, "id", &format!("{path}.id"), true),
            None => None,
        };
        let name = self.string(&fields, "name", &format!("{path}.name"), true);
        let glob = match (fields.contains_key("id"), fields.contains_key("name")) {
            (false, false) => {
                self.error(
                    item.line,
                    Some(&path),
                    "an exception needs `id` (one resource) or `name` (a glob on resource names, \
                     e.g. \"breakglass-*@acme.io\"); it has neither",
                );
                None
            }
            (true, true) => {
                self.error(
                    item.line,
                    Some(&path),
                    "an exception has either `id` or `name`, not both; split it in two",
                );
                None
            }
            (false, true) => name.as_deref().and_then(|pattern| {
                match GlobBuilder::new(pattern).case_insensitive(true).build() {
                    Ok(glob) => Some(glob.compile_matcher()),
                    Err(e) => {
                        self.error(
                            fields["name"].0,
                            Some(&format!("{path}.name")),
                            format!(
                                "`{pattern}` is not a valid glob: {}; use `*` for any text, `?` \
                                 for one character",
                                e.kind()
                            ),
                        );
                        None
                    }
                }
            }),
            (true, false) => None,
        };
        let expires_field = format!("{path}.expires");
        let expires = match fields.get("expires").copied() {
            None => None,
            Some((line, node)) => {
                let parsed = node
                    .as_str()
                    .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok());
                if parsed.is_none() {
                    self.error(
                        line,
                        Some(&expires_field),
                        format!(
                            "expected the last day the exception applies, as YYYY-MM-DD (e.g. \
                             2027-03-31); found {}",
                            node.describe()
                        ),
                    );
                }
                parsed
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some((
            Exception {
                id,
                name,
                reason: reason?,
                expires,
            },
            glob,
        ))
    }
}

/// What to write for a missing required field.
fn required_hint(field: &str) -> &'static str {
    match field {
        "id" => " (a unique name such as `workspace-owner-granted`)",
        "severity" => " (info, low, medium, high or critical)",
        "resource" => {
            " (workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan or audit_event)"
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
