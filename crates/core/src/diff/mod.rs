//! Differences between two versions of a resource.
//!
//! [`field_changes`] lists what changed as [`FieldChange`]s, each at a readable [path](#paths);
//! [`diff_resource`] wraps that into a [`ResourceChange`] with a unified [`text_diff`] of the
//! pretty-printed canonical JSON. Arrays whose elements are identity-keyed (see
//! [`crate::canonical`]) are matched by identity, so a reordering by the API is never a change.
//! For any two values, `field_changes(a, b)` is empty exactly when
//! `canonicalize(a) == canonicalize(b)`.
//!
//! # Paths
//!
//! Paths are stored in the database and used by rules, so their syntax is stable:
//!
//! - Object keys are joined by `.`: `enabled`, `metadata.logos.default`.
//! - A key that is not a plain identifier (empty, exactly `$`, or containing `.`, `[`, `]`,
//!   `"`, `\`, whitespace or a control character) is written as a bracketed JSON string, with
//!   no dot before it: `settings["x.y"]`, `["a b"]`.
//! - An element of an identity-keyed array is selected by `[field=value]`, where `field` is the
//!   identity field (`id`, `roleId`, `key` or `email`) and `value` its value, written bare:
//!   `permissions[roleId=r1].resources[id=ws1].type`, `labels[key=environment].value`,
//!   `members[email=a@x.com]`. A numeric identity is written as its JSON number. A value that is
//!   empty, starts or ends with whitespace, or contains `[`, `]`, `"`, `\` or a control
//!   character is written as a JSON string: `labels[key="a]b"]`.
//! - Any other array is never indexed: when it differs, the change is at the array's own path
//!   (`writeKeys`, `metadata.categories`).
//! - A change of the whole value (a root of another type, a root scalar or unkeyed root array
//!   that differs) has the path `$`.
//!
//! A key or element present on one side only is one change for its whole subtree, with the
//! absent side `None`.

mod field;
mod paths;
mod plan;
mod states;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::TextDiff;

use crate::canonical::{canonicalize, is_canonical};
use crate::model::{Attribution, ResourceKind};
use crate::terminal::Escaped;

pub use field::field_changes;
pub use plan::{CurrentVersion, PlannedChange, SnapshotDelta, plan};
pub use states::between;

/// How a resource changed between two snapshots.
///
/// The string forms (`as_str`) are stored in the database and used by rules; they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The resource is new in the later snapshot.
    Added,
    /// The resource disappeared from the later snapshot.
    Removed,
    /// The resource exists in both snapshots with different content.
    Modified,
}

impl ChangeOp {
    /// The stable lowercase name: `added`, `removed` or `modified`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Added => "added",
            ChangeOp::Removed => "removed",
            ChangeOp::Modified => "modified",
        }
    }

    /// The one-character marker used in human output: `+`, `-` or `~`.
    pub fn symbol(self) -> char {
        match self {
            ChangeOp::Added => '+',
            ChangeOp::Removed => '-',
            ChangeOp::Modified => '~',
        }
    }
}

impl fmt::Display for ChangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no change operation.
#[derive(Debug, thiserror::Error)]
#[error("unknown change operation `{0}`; expected one of: added, removed, modified")]
pub struct UnknownOp(pub String);

impl FromStr for ChangeOp {
    type Err = UnknownOp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [ChangeOp::Added, ChangeOp::Removed, ChangeOp::Modified]
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_string()))
    }
}

/// One changed value inside a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where the value is, in the [path syntax](self#paths).
    pub path: String,
    /// The value before (canonical); `None` when absent before.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub old: Option<Value>,
    /// The value after (canonical); `None` when absent after.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub new: Option<Value>,
    /// Whether this is API drift: a field Segment's API started or stopped returning, not a
    /// change anyone made (see [`crate::drift`]). Stored only when true, so rows written
    /// before it existed read and hash the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_drift: bool,
}

/// Deserialises a field that is there as `Some`, even a JSON `null`: a value that changed from
/// or to `null` must not read back as absent. A missing field is `None` through `default`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One resource that was added, removed or modified between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Segment's id of the resource.
    pub resource_id: String,
    /// A human name for the resource.
    pub name: String,
    /// Whether it was added, removed or modified.
    pub op: ChangeOp,
    /// The changed values, sorted by path; empty for added and removed resources.
    pub fields: Vec<FieldChange>,
    /// Unified diff of the pretty-printed canonical JSON (see [`text_diff`]).
    pub text_diff: String,
    /// Who made it, from the audit trail (`actor`, `actor_email`, `event_type`, `event_id`;
    /// all null when unknown).
    #[serde(flatten)]
    pub attribution: Attribution,
}

/// Compares two versions of one resource; `None` when they are equivalent or both absent.
///
/// An added or removed resource has no `fields`, only a `text_diff`.
pub fn diff_resource(
    kind: ResourceKind,
    resource_id: &str,
    name: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<ResourceChange> {
    let (op, fields) = match (before, after) {
        (None, None) => return None,
        (None, Some(_)) => (ChangeOp::Added, Vec::new()),
        (Some(_), None) => (ChangeOp::Removed, Vec::new()),
        (Some(b), Some(a)) => {
            let fields = field_changes(b, a);
            if fields.is_empty() {
                return None;
            }
            (ChangeOp::Modified, fields)
        }
    };
    let old_label = match before {
        Some(_) => format!("before/{kind}/{resource_id}"),
        None => "/dev/null".to_string(),
    };
    let new_label = match after {
        Some(_) => format!("after/{kind}/{resource_id}"),
        None => "/dev/null".to_string(),
    };
    Some(ResourceChange {
        kind,
        resource_id: resource_id.to_string(),
        name: name.to_string(),
        op,
        fields,
        text_diff: text_diff(before, after, &old_label, &new_label),
        attribution: Attribution::default(),
    })
}

/// Unified diff, with 3 lines of context, of the pretty-printed canonical JSON of both sides.
///
/// An absent side is empty text. The result is empty when the texts are identical; otherwise
/// it starts with `--- old_label` / `+++ new_label` headers.
pub fn text_diff(
    before: Option<&Value>,
    after: Option<&Value>,
    old_label: &str,
    new_label: &str,
) -> String {
    let old = pretty(before);
    let new = pretty(after);
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// Pretty canonical JSON with a final newline (so the diff carries no "no newline" markers).
fn pretty(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    // Stored bodies are already canonical: copy only when there is something to sort.
    let copy;
    let v = if is_canonical(v) {
        v
    } else {
        copy = canonicalize(v.clone());
        &copy
    };
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value serialises");
    s.push('\n');
    s
}

/// How many characters of a value the human output shows before eliding the rest.
const MAX_SHOWN_CHARS: usize = 80;

impl fmt::Display for ResourceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.op.symbol(), self.kind)?;
        // Names, ids and values come from the workspace: escape control characters and bidi
        // overrides so that a crafted name cannot forge output lines or recolour the terminal.
        if self.name.is_empty() || self.name == self.resource_id {
            write!(f, "{}", Escaped(&self.resource_id))?;
        } else {
            write!(
                f,
                "{} ({})",
                Escaped(&self.name),
                Escaped(&self.resource_id)
            )?;
        }
        if self.attribution.is_known() {
            write!(f, " {}", Escaped(&self.attribution.describe()))?;
        }
        for change in &self.fields {
            write!(
                f,
                "\n    {}: {} → {}{}",
                Escaped(&change.path),
                Escaped(&shown(change.old.as_ref())),
                Escaped(&shown(change.new.as_ref())),
                if change.api_drift { " (API drift)" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// Compact JSON of a value for human output, elided past [`MAX_SHOWN_CHARS`].
fn shown(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "(absent)".to_string();
    };
    let s = v.to_string();
    match s.char_indices().nth(MAX_SHOWN_CHARS) {
        None => s,
        Some(_) => {
            let (cut, _) = s
                .char_indices()
                .nth(MAX_SHOWN_CHARS - 1)
                .expect("longer than the limit");
            format!("{}…", &s[..cut])
        }
    }
}
