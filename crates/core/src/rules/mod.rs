//! Rules: YAML files of CEL conditions that turn snapshots and changes into alerts.
//!
//! The contract (rule format, CEL variables, helper functions) is in `rules-spec.md`; this
//! module implements it in three steps:
//!
//! - [`RuleSet::load`] reads rule files (`load/`), validates every field and compiles every
//!   condition and message template once (`expr/`), collecting **all** mistakes as
//!   [`LoadErrors`] that name the file, line, rule and field;
//! - an [`Evaluator`] (`eval.rs`), built once per poll, evaluates the compiled rules against
//!   each resource ([`Evaluator::check_resource`]) or change ([`Evaluator::check_change`]),
//!   converting each subject to a CEL value once for all of its kind's rules;
//! - each [`Verdict`] says whether the rule passed, fired (with a one-line summary and an
//!   explanation of the values the condition read), was exempted, or failed to evaluate.
//!
//! Everything here is pure: no I/O except reading rule files in [`RuleSet::load`].

mod eval;
mod expr;
mod load;
mod snapshot;
mod starter;
#[cfg(test)]
mod tests;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::diff::ChangeOp;
use crate::model::ResourceKind;

pub use eval::{ChangeFacts, Evaluator, Outcome, Subject, Verdict, inventory};
pub use expr::{CEL_MACROS, CEL_STANDARD_FUNCTIONS, HELPER_FUNCTIONS};
pub use snapshot::{SnapshotContext, StateResource, any_reads, check_state, inventory_if_read};
pub use starter::{StarterFile, starter_files, starter_pack};

/// All the rules of a rule directory (or file), validated and compiled.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_id: HashMap<String, usize>,
    /// One environment owns every rule's message template, compiled once at load.
    templates: Arc<minijinja::Environment<'static>>,
}

impl RuleSet {
    /// Loads a rule file, or every `*.yaml`/`*.yml` file under a directory (recursively, in
    /// sorted path order; hidden entries are skipped). Collects every mistake in every file.
    pub fn load(path: &Path) -> Result<RuleSet, LoadErrors> {
        load::load_path(path)
    }

    /// Loads one in-memory rule file; `file` only names it in errors.
    pub fn from_yaml(file: &str, yaml: &str) -> Result<RuleSet, LoadErrors> {
        load::load_sources(vec![(PathBuf::from(file), Ok(yaml.to_string()))])
    }

    /// The rules, in load order (files in path order, rules in file order).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.by_id.get(id).map(|&i| &self.rules[i])
    }

    /// Only the rules whose id matches one of `patterns` (globs such as `access-*`), for a
    /// workspace that selects part of the rule set; returns the patterns that matched nothing,
    /// which are almost always typos.
    pub fn select(&self, patterns: &[String]) -> Result<(RuleSet, Vec<String>), globset::Error> {
        let mut matchers = Vec::with_capacity(patterns.len());
        for p in patterns {
            matchers.push(globset::Glob::new(p)?.compile_matcher());
        }
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| matchers.iter().any(|m| m.is_match(&r.id)))
            .cloned()
            .collect();
        let unmatched = patterns
            .iter()
            .zip(&matchers)
            .filter(|(_, m)| !self.rules.iter().any(|r| m.is_match(&r.id)))
            .map(|(p, _)| p.clone())
            .collect();
        let by_id = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ok((
            RuleSet {
                rules,
                by_id,
                templates: self.templates.clone(),
            },
            unmatched,
        ))
    }

    /// Every exception whose `expires` day is over at `now` (UTC), with its rule, disabled
    /// rules included: an expired exception no longer applies and should be renewed or removed.
    pub fn expired_exceptions(&self, now: DateTime<Utc>) -> Vec<(&Rule, &Exception)> {
        self.rules
            .iter()
            .flat_map(|rule| rule.exceptions.iter().map(move |e| (rule, e)))
            .filter(|(_, e)| e.is_expired(now))
            .collect()
    }
}

/// One rule, as written in its file, plus what was compiled from it at load.
///
/// The public fields describe the rule; editing them does not recompile it (edit the file).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id: `[a-z0-9][a-z0-9-]*`, at most 64 characters.
    pub id: String,
    /// Short human title.
    pub title: String,
    /// What the rule detects and why it matters.
    pub description: String,
    /// What to do about an alert.
    pub remediation: String,
    /// How bad an alert is.
    pub severity: Severity,
    /// Free-form tags, e.g. compliance controls (`soc2:CC6.1`).
    pub tags: Vec<String>,
    /// The sinks its alerts go to; empty: every sink whose filters they pass.
    pub sinks: Vec<String>,
    /// Disabled rules are loaded and validated but never evaluated.
    pub enabled: bool,
    /// The kind of resource the rule reads.
    pub resource: ResourceKind,
    /// Whether it checks every resource or each change.
    pub kind: RuleKind,
    /// The CEL condition: true means non-compliant (compliance) or alert (change).
    pub when: String,
    /// The minijinja template of the one-line summary, if any.
    pub message: Option<String>,
    /// Resources exempted from the rule.
    pub exceptions: Vec<Exception>,
    /// The file the rule came from.
    pub file: PathBuf,
    /// The line of the rule in its file (1-based).
    pub line: usize,
    compiled: Arc<Compiled>,
}

impl Rule {
    /// Hex SHA-256 of the rule's definition: every field that affects results, not file/line.
    pub fn fingerprint(&self) -> &str {
        &self.compiled.fingerprint
    }

    /// Whether the condition reads this variable (e.g. `inventory`, which is costly to build).
    pub fn reads(&self, variable: &str) -> bool {
        self.compiled.condition.variables.contains(variable)
    }

    /// Whether the condition reads `now`, `seen_since` or `inventory`, so that its result can
    /// change without the resource changing: such rules are re-evaluated on every poll.
    pub fn is_time_dependent(&self) -> bool {
        self.compiled.condition.time_dependent
    }

    /// Whether this is a change rule.
    pub fn is_change(&self) -> bool {
        matches!(self.kind, RuleKind::Change { .. })
    }

    /// The first exception that applies to this subject at `now`.
    fn active_exception(&self, id: &str, name: &str, now: DateTime<Utc>) -> Option<&Exception> {
        self.exceptions
            .iter()
            .zip(&self.compiled.exception_globs)
            .find(|(e, glob)| {
                !e.is_expired(now)
                    && match (&e.id, glob) {
                        (Some(eid), _) => eid == id,
                        (None, Some(glob)) => glob.is_match(name),
                        (None, None) => false,
                    }
            })
            .map(|(e, _)| e)
    }
}

/// What was compiled from a rule at load; shared by the rule's clones.
struct Compiled {
    condition: expr::Condition,
    /// The rule's template name in [`RuleSet::templates`], when it has a `message`.
    template: Option<String>,
    /// One per exception, in order: the compiled `name` glob, if it has one.
    exception_globs: Vec<Option<globset::GlobMatcher>>,
    fingerprint: String,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The AST and globs are noise in a `Debug` of a rule; the fingerprint identifies it.
        f.debug_struct("Compiled")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Whether a rule checks resources or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Evaluated for each change of the rule's resource kind whose op is in `on`.
    Change {
        /// The operations the rule alerts on; never empty.
        on: Vec<ChangeOp>,
    },
    /// Evaluated for every resource of the rule's kind; true means non-compliant.
    Compliance,
}

impl RuleKind {
    /// `change` or `compliance`, as written in rule files.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Change { .. } => "change",
            RuleKind::Compliance => "compliance",
        }
    }
}

/// How bad an alert is; ordered from `Info` (lowest) to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, no action expected.
    Info,
    /// Minor risk.
    Low,
    /// Should be looked at soon.
    Medium,
    /// Should be looked at today.
    High,
    /// Needs immediate attention.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name used in rule files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a severity; expected one of info, low, medium, high, critical")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

/// A resource exempted from a rule, by id or by a glob on its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Exempts the resource with exactly this id.
    pub id: Option<String>,
    /// Exempts resources whose name (email for users and invites) matches this glob,
    /// case-insensitively.
    pub name: Option<String>,
    /// Why the exemption is acceptable.
    pub reason: String,
    /// The last day (UTC) the exception applies; `None` for no end.
    pub expires: Option<NaiveDate>,
}

impl Exception {
    /// Whether the exception's last day is over at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|last| now.date_naive() > last)
    }
}

/// Every mistake found while loading rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// One mistake in a rule file.
///
/// Displayed as `rules/iam.yaml:14: rule `owner-granted`: field `severity`: <message>`, leaving
/// out what is unknown. A CEL error's message continues on indented lines with an excerpt of
/// the condition and a caret under the mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The rule file.
    pub file: PathBuf,
    /// The line (1-based) of the field, or of the rule when the field is missing.
    pub line: Option<usize>,
    /// The rule's id, when it has one.
    pub rule_id: Option<String>,
    /// The field, e.g. `severity` or `exceptions[1].expires`.
    pub field: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(id) = &self.rule_id {
            write!(f, ": rule `{id}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}
