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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use similar::TextDiff;

use crate::canonical::{array_identities, canonicalize, is_canonical};
use crate::model::{Attribution, Resource, ResourceKind};
use crate::terminal::Escaped;

mod states;
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

/// Lists the differences between `before` and `after`, sorted by path.
///
/// Identity-keyed arrays are matched by identity at any depth, so the inputs need not be
/// canonical; values in the result are canonical.
pub fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut walker = Walker {
        path: String::new(),
        out: Vec::new(),
    };
    walker.walk(before, after);
    let mut out = walker.out;
    // Paths are unique (object keys and identities are), so this order is total.
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out
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

/// Walks two values in step, collecting changes at the current path.
struct Walker {
    /// The path of the values being compared; empty at the root.
    path: String,
    out: Vec<FieldChange>,
}

impl Walker {
    fn walk(&mut self, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => self.walk_objects(ma, mb),
            (Value::Array(xa), Value::Array(xb)) => {
                // Cheap and common: most arrays of a modified resource are untouched.
                if xa == xb {
                    return;
                }
                match keyed_pair(xa, xb) {
                    Some((field, ida, idb)) => self.walk_keyed(field, xa, &ida, xb, &idb),
                    None if arrays_equivalent(xa, xb) => {}
                    None => self.record(Some(a), Some(b)),
                }
            }
            _ if a == b => {}
            _ => self.record(Some(a), Some(b)),
        }
    }

    fn walk_objects(&mut self, ma: &Map<String, Value>, mb: &Map<String, Value>) {
        let len = self.path.len();
        // Lookups rather than a merge of the sorted key sequences, so that correctness does not
        // depend on `Map` iterating in key order.
        for (k, va) in ma {
            push_key(&mut self.path, k);
            match mb.get(k) {
                Some(vb) => self.walk(va, vb),
                None => self.record(Some(va), None),
            }
            self.path.truncate(len);
        }
        for (k, vb) in mb {
            if !ma.contains_key(k) {
                push_key(&mut self.path, k);
                self.record(None, Some(vb));
                self.path.truncate(len);
            }
        }
    }

    fn walk_keyed(
        &mut self,
        field: &str,
        xa: &[Value],
        ida: &[Cow<'_, str>],
        xb: &[Value],
        idb: &[Cow<'_, str>],
    ) {
        let len = self.path.len();
        let index: HashMap<&str, usize> = ida
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_ref(), i))
            .collect();
        let mut matched = vec![false; xa.len()];
        for (vb, id) in xb.iter().zip(idb) {
            push_selector(&mut self.path, field, id);
            match index.get(id.as_ref()) {
                Some(&i) => {
                    matched[i] = true;
                    self.walk(&xa[i], vb);
                }
                None => self.record(None, Some(vb)),
            }
            self.path.truncate(len);
        }
        for ((va, id), _) in xa.iter().zip(ida).zip(&matched).filter(|(_, m)| !**m) {
            push_selector(&mut self.path, field, id);
            self.record(Some(va), None);
            self.path.truncate(len);
        }
    }

    fn record(&mut self, old: Option<&Value>, new: Option<&Value>) {
        let path = if self.path.is_empty() {
            "$".to_string()
        } else {
            self.path.clone()
        };
        self.out.push(FieldChange {
            path,
            old: old.map(|v| canonicalize(v.clone())),
            new: new.map(|v| canonicalize(v.clone())),
            api_drift: false,
        });
    }
}

/// Identity values of an array's elements, in order.
type Ids<'a> = Vec<Cow<'a, str>>;

/// The identities of two arrays that are to be matched element by element by identity: both
/// identity-keyed by the same field, or one of them empty and the other identity-keyed (a first
/// element granted or a last one revoked). `None` otherwise.
fn keyed_pair<'a, 'b>(
    xa: &'a [Value],
    xb: &'b [Value],
) -> Option<(&'static str, Ids<'a>, Ids<'b>)> {
    let ka = if xa.is_empty() {
        None
    } else {
        Some(array_identities(xa)?)
    };
    let kb = if xb.is_empty() {
        None
    } else {
        Some(array_identities(xb)?)
    };
    match (ka, kb) {
        (Some((fa, ia)), Some((fb, ib))) if fa == fb => Some((fa, ia, ib)),
        (Some((f, ia)), None) => Some((f, ia, Vec::new())),
        (None, Some((f, ib))) => Some((f, Vec::new(), ib)),
        _ => None,
    }
}

/// Whether two values have the same canonical form, without building it.
fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            ma.len() == mb.len()
                && ma
                    .iter()
                    .all(|(k, va)| mb.get(k).is_some_and(|vb| equivalent(va, vb)))
        }
        (Value::Array(xa), Value::Array(xb)) => xa == xb || arrays_equivalent(xa, xb),
        _ => a == b,
    }
}

/// [`equivalent`] for arrays: identity-keyed arrays as sets by identity, others in order.
fn arrays_equivalent(xa: &[Value], xb: &[Value]) -> bool {
    if xa.len() != xb.len() {
        return false;
    }
    match keyed_pair(xa, xb) {
        Some((_, ida, idb)) => {
            // Same length and unique identities: every `b` identity found means a bijection.
            let index: HashMap<&str, &Value> = ida.iter().map(|id| id.as_ref()).zip(xa).collect();
            idb.iter()
                .zip(xb)
                .all(|(id, vb)| index.get(id.as_ref()).is_some_and(|va| equivalent(va, vb)))
        }
        None => xa.iter().zip(xb).all(|(va, vb)| equivalent(va, vb)),
    }
}

/// Appends `.key`, or `["key"]` for a key that is not a plain identifier.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key != "$"
        && !key.chars().any(|c| {
            matches!(c, '.' | '[' | ']' | '"' | '\\') || c.is_whitespace() || c.is_control()
        });
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        push_json_string(path, key);
        path.push(']');
    }
}

/// Appends `[field=value]`, quoting the value when it would be ambiguous or unreadable bare.
fn push_selector(path: &mut String, field: &str, value: &str) {
    path.push('[');
    path.push_str(field);
    path.push('=');
    let bare = !value.is_empty()
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !value
            .chars()
            .any(|c| matches!(c, '[' | ']' | '"' | '\\') || c.is_control());
    if bare {
        path.push_str(value);
    } else {
        push_json_string(path, value);
    }
    path.push(']');
}

fn push_json_string(path: &mut String, s: &str) {
    path.push_str(&serde_json::to_string(s).expect("a string serialises"));
}

// ---------------------------------------------------------------------------------------------
// Planning a poll: which resources are new, changed or gone.

/// The current (latest complete) version of a resource, as the store reports it.
#[derive(Debug, Clone)]
pub struct CurrentVersion {
    /// Row id in `resource_versions`.
    pub version_id: i64,
    /// Content hash of the version.
    pub hash: String,
    /// Display name of the version.
    pub name: String,
}

/// What a poll must write: the resources to add as new versions, the versions they close, and
/// the field-level changes. Produced by [`plan`], consumed by the store.
#[derive(Debug, Default)]
pub struct SnapshotDelta<'a> {
    /// Resources with no current version.
    pub added: Vec<&'a Resource>,
    /// Resources whose content hash changed, with the version they replace.
    pub modified: Vec<(&'a Resource, i64)>,
    /// Current versions whose resource is gone.
    pub removed: Vec<i64>,
    /// Current versions of kinds this poll did not collect (turned off in the configuration):
    /// closed without a change, since nothing is known about them any more.
    pub untracked: Vec<i64>,
    /// The field-level changes, sorted by kind and id (empty for a baseline).
    pub changes: Vec<PlannedChange<'a>>,
}

/// A change with where its two sides live: the stored version it replaces or removes, and the
/// collected resource it adds. Rules read the bodies from there instead of every change holding
/// two parsed JSON trees.
#[derive(Debug)]
pub struct PlannedChange<'a> {
    /// The change itself.
    pub change: ResourceChange,
    /// The current version this change closes (modified, removed).
    pub before_version: Option<i64>,
    /// The resource this change stores (added, modified).
    pub after: Option<&'a Resource>,
}

fn planned(
    change: Option<ResourceChange>,
    before_version: Option<i64>,
    after: Option<&Resource>,
) -> Option<PlannedChange<'_>> {
    change.map(|change| PlannedChange {
        change,
        before_version,
        after,
    })
}

/// Compares a fresh collection with the current versions. Equal hashes mean equal canonical
/// bodies, so only changed resources are parsed and diffed: a quiet poll does no JSON work.
/// `load` fetches a stored version's body. A `baseline` (first snapshot) records no changes.
pub fn plan<'a, E>(
    resources: &'a [Resource],
    current: &HashMap<(ResourceKind, String), CurrentVersion>,
    baseline: bool,
    mut load: impl FnMut(i64) -> Result<Value, E>,
) -> Result<SnapshotDelta<'a>, E> {
    let parse = |r: &Resource| -> Value {
        serde_json::from_str(&r.body).expect("a resource body is JSON we serialised")
    };
    let mut delta = SnapshotDelta::default();
    let mut present = HashSet::with_capacity(resources.len());
    for r in resources {
        let key = (r.kind, r.id.clone());
        match current.get(&key) {
            None => {
                delta.added.push(r);
                if !baseline {
                    let change = diff_resource(r.kind, &r.id, &r.name, None, Some(&parse(r)));
                    delta.changes.extend(planned(change, None, Some(r)));
                }
            }
            Some(cur) if cur.hash != r.hash => {
                delta.modified.push((r, cur.version_id));
                let before = load(cur.version_id)?;
                let change = diff_resource(r.kind, &r.id, &r.name, Some(&before), Some(&parse(r)));
                delta
                    .changes
                    .extend(planned(change, Some(cur.version_id), Some(r)));
            }
            Some(_) => {}
        }
        present.insert(key);
    }
    let mut gone: Vec<_> = current
        .iter()
        .filter(|(key, _)| !present.contains(*key))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for ((kind, id), cur) in gone {
        delta.removed.push(cur.version_id);
        let before = load(cur.version_id)?;
        let change = diff_resource(*kind, id, &cur.name, Some(&before), None);
        delta
            .changes
            .extend(planned(change, Some(cur.version_id), None));
    }
    delta.changes.sort_by(|a, b| {
        (a.change.kind, &a.change.resource_id).cmp(&(b.change.kind, &b.change.resource_id))
    });
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::identity;
    use serde_json::json;

    fn change(path: &str, old: Option<Value>, new: Option<Value>) -> FieldChange {
        FieldChange {
            path: path.to_string(),
            old,
            new,
            api_drift: false,
        }
    }

    fn user() -> Value {
        json!({
            "id": "2Zx9",
            "name": "Alice",
            "email": "alice@acme.io",
            "permissions": [
                {"roleId": "r1", "roleName": "Source Admin", "resources": [
                    {"id": "s1", "type": "SOURCE", "labels": [{"key": "environment", "value": "prod"}]},
                    {"id": "s2", "type": "SOURCE"}
                ]},
                {"roleId": "r3", "roleName": "Read-only", "resources": [
                    {"id": "ws1", "type": "WORKSPACE"}
                ]}
            ]
        })
    }

    fn source() -> Value {
        json!({
            "id": "src1",
            "slug": "ios_prod",
            "name": "iOS App (prod)",
            "workspaceId": "ws1",
            "enabled": true,
            "writeKeys": ["sha256:ab12", "sha256:cd34"],
            "metadata": {
                "id": "m1", "name": "iOS", "slug": "ios",
                "logos": {"default": "https://cdn/ios.svg"},
                "categories": ["Mobile", "Website"],
                "options": [{"name": "apiKey", "type": "string", "required": true}]
            },
            "settings": {"trackLifecycle": true},
            "labels": [{"key": "environment", "value": "prod"}, {"key": "team", "value": "mobile"}]
        })
    }

    #[test]
    fn reordered_identity_arrays_are_no_change() {
        let a = user();
        let mut b = user();
        b["permissions"].as_array_mut().unwrap().reverse();
        b["permissions"][1]["resources"]
            .as_array_mut()
            .unwrap()
            .reverse();
        assert_ne!(a, b);
        assert_eq!(canonicalize(a.clone()), canonicalize(b.clone()));
        assert!(field_changes(&a, &b).is_empty());
        assert!(
            diff_resource(
                ResourceKind::User,
                "2Zx9",
                "alice@acme.io",
                Some(&a),
                Some(&b)
            )
            .is_none()
        );
    }

    #[test]
    fn role_granted() {
        let a = user();
        let mut b = user();
        let granted = json!({"roleId": "r2", "roleName": "Workspace Owner", "resources": [{"id": "ws1", "type": "WORKSPACE"}]});
        b["permissions"]
            .as_array_mut()
            .unwrap()
            .insert(0, granted.clone());
        assert_eq!(
            field_changes(&a, &b),
            vec![change("permissions[roleId=r2]", None, Some(granted))]
        );
    }

    #[test]
    fn first_role_granted_to_user_without_permissions() {
        let a = json!({"id": "u1", "permissions": []});
        let b = json!({"id": "u1", "permissions": [{"roleId": "r1", "roleName": "Owner"}]});
        assert_eq!(
            field_changes(&a, &b),
            vec![change(
                "permissions[roleId=r1]",
                None,
                Some(json!({"roleId": "r1", "roleName": "Owner"}))
            )]
        );
        // And the reverse: the last role revoked.
        assert_eq!(field_changes(&b, &a)[0].path, "permissions[roleId=r1]");
    }

    #[test]
    fn resource_added_inside_permission() {
        let a = user();
        let mut b = user();
        b["permissions"][0]["resources"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "s9", "type": "SOURCE"}));
        assert_eq!(
            field_changes(&a, &b),
            vec![change(
                "permissions[roleId=r1].resources[id=s9]",
                None,
                Some(json!({"id": "s9", "type": "SOURCE"}))
            )]
        );
    }

    #[test]
    fn label_removed() {
        let a = source();
        let mut b = source();
        b["labels"].as_array_mut().unwrap().remove(0);
        assert_eq!(
            field_changes(&a, &b),
            vec![change(
                "labels[key=environment]",
                Some(json!({"key": "environment", "value": "prod"})),
                None
            )]
        );
    }

    #[test]
    fn label_value_changed_deep_and_shallow() {
        let a = source();
        let mut b = source();
        b["labels"][0]["value"] = json!("staging");
        assert_eq!(
            field_changes(&a, &b),
            vec![change(
                "labels[key=environment].value",
                Some(json!("prod")),
                Some(json!("staging"))
            )]
        );

        let a = user();
        let mut b = user();
        b["permissions"][0]["resources"][0]["labels"][0]["value"] = json!("dev");
        b["permissions"][0]["roleName"] = json!("Workspace Owner");
        let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            [
                "permissions[roleId=r1].resources[id=s1].labels[key=environment].value",
                "permissions[roleId=r1].roleName",
            ]
        );
    }

    #[test]
    fn source_disabled() {
        let a = source();
        let mut b = source();
        b["enabled"] = json!(false);
        assert_eq!(
            field_changes(&a, &b),
            vec![change("enabled", Some(json!(true)), Some(json!(false)))]
        );
    }

    #[test]
    fn write_keys_rotated_is_a_whole_array_change() {
        let a = source();
        let mut b = source();
        b["writeKeys"] = json!(["sha256:cd34", "sha256:ef56"]);
        assert_eq!(
            field_changes(&a, &b),
            vec![change(
                "writeKeys",
                Some(json!(["sha256:ab12", "sha256:cd34"])),
                Some(json!(["sha256:cd34", "sha256:ef56"]))
            )]
        );
        // Order is data in unkeyed arrays.
        let mut c = source();
        c["metadata"]["categories"] = json!(["Website", "Mobile"]);
        assert_eq!(field_changes(&a, &c)[0].path, "metadata.categories");
    }

    #[test]
    fn unknown_nested_fields() {
        let a = source();
        let mut b = source();
        b["metadata"]["logos"]["alt"] = json!("https://cdn/alt.svg");
        b["metadata"]["options"][0]["defaultValue"] = json!({"nested": [1, 2]});
        b["settings"]["newThing"] = json!({"deep": {"x": 1}});
        assert_eq!(
            field_changes(&a, &b),
            vec![
                change(
                    "metadata.logos.alt",
                    None,
                    Some(json!("https://cdn/alt.svg"))
                ),
                // `options` elements have no identity: the array changes as a whole.
                change(
                    "metadata.options",
                    Some(a["metadata"]["options"].clone()),
                    Some(b["metadata"]["options"].clone())
                ),
                change("settings.newThing", None, Some(json!({"deep": {"x": 1}}))),
            ]
        );
    }

    #[test]
    fn keys_needing_quotes() {
        let a = json!({"settings": {"x.y": 1, "": 1, "a b": 1, "q\"": 1, "br[0]": 1, "ok-key_1": 1, "$": 1}, "$": 1});
        let b = json!({"settings": {"x.y": 2, "": 2, "a b": 2, "q\"": 2, "br[0]": 2, "ok-key_1": 2, "$": 2}, "$": 2});
        let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            [
                r#"["$"]"#,
                r#"settings.ok-key_1"#,
                r#"settings[""]"#,
                r#"settings["$"]"#,
                r#"settings["a b"]"#,
                r#"settings["br[0]"]"#,
                r#"settings["q\""]"#,
                r#"settings["x.y"]"#,
            ]
        );
    }

    #[test]
    fn selector_values() {
        let a = json!({"members": [{"email": "a@x.com", "name": "A"}], "items": [{"id": 7, "v": 1}], "labels": [{"key": "a]b", "value": 1}, {"key": "", "value": 1}]});
        let b = json!({"members": [{"email": "a@x.com", "name": "B"}], "items": [{"id": 7, "v": 2}], "labels": [{"key": "a]b", "value": 2}, {"key": "", "value": 2}]});
        let paths: Vec<String> = field_changes(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            [
                "items[id=7].v",
                r#"labels[key=""].value"#,
                r#"labels[key="a]b"].value"#,
                "members[email=a@x.com].name",
            ]
        );
    }

    #[test]
    fn root_changes() {
        assert_eq!(
            field_changes(&json!({"a": 1}), &json!([1])),
            vec![change("$", Some(json!({"a": 1})), Some(json!([1])))]
        );
        assert_eq!(field_changes(&json!(1), &json!(2))[0].path, "$");
        assert_eq!(field_changes(&json!([1, 2]), &json!([2, 1]))[0].path, "$");
        assert_eq!(
            field_changes(&json!([{"id": "a", "x": 1}]), &json!([{"id": "a", "x": 2}]))[0].path,
            "[id=a].x"
        );
        assert!(field_changes(&json!(null), &json!(null)).is_empty());
    }

    #[test]
    fn mixed_and_duplicate_identity_arrays_are_compared_whole() {
        let cases = [
            // Mixed identified and unidentified elements.
            (
                json!([{"id": "a"}, {"name": "n"}]),
                json!([{"id": "a"}, {"name": "m"}]),
            ),
            // Duplicate identities.
            (
                json!([{"id": "a", "v": 1}, {"id": "a", "v": 2}]),
                json!([{"id": "a", "v": 1}, {"id": "a", "v": 3}]),
            ),
            // Different identity fields on the two sides.
            (json!([{"id": "a"}]), json!([{"key": "a"}])),
            // Objects and scalars.
            (json!([{"id": "a"}, 1]), json!([{"id": "a"}, 2])),
        ];
        for (a, b) in cases {
            let got = field_changes(&json!({"arr": a}), &json!({"arr": b}));
            assert_eq!(got, vec![change("arr", Some(a), Some(b))]);
        }
        // Reordering a duplicate-identity array is a change (its order is kept as data).
        let a = json!([{"id": "a", "v": 1}, {"id": "a", "v": 2}]);
        let b = json!([{"id": "a", "v": 2}, {"id": "a", "v": 1}]);
        assert_eq!(field_changes(&a, &b).len(), 1);
        assert_ne!(canonicalize(a), canonicalize(b));
    }

    #[test]
    fn reordering_inside_unkeyed_arrays_is_no_change() {
        // The inner keyed arrays differ only in order; the outer array has no identity.
        let a = json!({"options": [{"name": "x", "labels": [{"key": "a"}, {"key": "b"}]}]});
        let b = json!({"options": [{"name": "x", "labels": [{"key": "b"}, {"key": "a"}]}]});
        assert!(field_changes(&a, &b).is_empty());
    }

    #[test]
    fn diff_resource_ops() {
        let s = source();
        assert!(
            diff_resource(ResourceKind::Source, "src1", "iOS App (prod)", None, None).is_none()
        );
        assert!(
            diff_resource(
                ResourceKind::Source,
                "src1",
                "iOS App (prod)",
                Some(&s),
                Some(&s)
            )
            .is_none()
        );

        let added = diff_resource(
            ResourceKind::Source,
            "src1",
            "iOS App (prod)",
            None,
            Some(&s),
        )
        .unwrap();
        assert_eq!(added.op, ChangeOp::Added);
        assert!(added.fields.is_empty());
        assert!(
            added
                .text_diff
                .starts_with("--- /dev/null\n+++ after/source/src1\n")
        );
        assert!(added.text_diff.contains("+  \"enabled\": true,"));

        let removed = diff_resource(
            ResourceKind::Invite,
            "bob@x.com",
            "bob@x.com",
            Some(&json!({"email": "bob@x.com"})),
            None,
        )
        .unwrap();
        assert_eq!(removed.op, ChangeOp::Removed);
        assert!(removed.fields.is_empty());
        assert!(removed.text_diff.contains("-  \"email\": \"bob@x.com\""));

        let mut t = source();
        t["enabled"] = json!(false);
        let modified = diff_resource(
            ResourceKind::Source,
            "src1",
            "iOS App (prod)",
            Some(&s),
            Some(&t),
        )
        .unwrap();
        assert_eq!(modified.op, ChangeOp::Modified);
        assert_eq!(modified.fields.len(), 1);
        assert!(modified.text_diff.contains("before/source/src1"));
    }

    #[test]
    fn text_diff_is_unified_with_labels_and_context() {
        let a = source();
        let mut b = source();
        b["name"] = json!("iOS App (production)");
        let d = text_diff(Some(&a), Some(&b), "old", "new");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines[0], "--- old");
        assert_eq!(lines[1], "+++ new");
        assert!(lines[2].starts_with("@@ "));
        assert!(lines.contains(&"-  \"name\": \"iOS App (prod)\","));
        assert!(lines.contains(&"+  \"name\": \"iOS App (production)\","));
        // One hunk: 3 lines of context either side of the one changed line.
        assert_eq!(lines.len(), 3 + 3 + 2 + 3);
        assert!(!d.contains("No newline"));
        // Canonical: a reordering alone gives no text diff.
        let mut c = source();
        c["labels"].as_array_mut().unwrap().reverse();
        assert_eq!(text_diff(Some(&a), Some(&c), "old", "new"), "");
    }

    #[test]
    fn display() {
        let a = user();
        let mut b = user();
        b["permissions"][0]["roleName"] = json!("Workspace Owner");
        let c = diff_resource(
            ResourceKind::User,
            "2Zx9",
            "alice@acme.io",
            Some(&a),
            Some(&b),
        )
        .unwrap();
        assert_eq!(
            c.to_string(),
            "~ user alice@acme.io (2Zx9)\n    permissions[roleId=r1].roleName: \"Source Admin\" → \"Workspace Owner\""
        );

        let s = source();
        let c = diff_resource(
            ResourceKind::Source,
            "src1",
            "iOS App (prod)",
            None,
            Some(&s),
        )
        .unwrap();
        assert_eq!(c.to_string(), "+ source iOS App (prod) (src1)");

        let inv = json!({"email": "bob@x.com"});
        let c = diff_resource(
            ResourceKind::Invite,
            "bob@x.com",
            "bob@x.com",
            Some(&inv),
            None,
        )
        .unwrap();
        assert_eq!(c.to_string(), "- invite bob@x.com");

        let mut t = source();
        t["labels"].as_array_mut().unwrap().remove(0);
        t["settings"]["blob"] = json!("x".repeat(200));
        let c = diff_resource(
            ResourceKind::Source,
            "src1",
            "evil\nname",
            Some(&s),
            Some(&t),
        )
        .unwrap();
        let text = c.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "~ source evil\\nname (src1)");
        assert_eq!(
            lines[1],
            "    labels[key=environment]: {\"key\":\"environment\",\"value\":\"prod\"} → (absent)"
        );
        let blob = lines[2]
            .strip_prefix("    settings.blob: (absent) → ")
            .unwrap();
        assert_eq!(blob.chars().count(), MAX_SHOWN_CHARS);
        assert!(blob.starts_with("\"xxx") && blob.ends_with("x…"));
    }

    #[test]
    fn change_op_strings_and_serde() {
        for op in [ChangeOp::Added, ChangeOp::Removed, ChangeOp::Modified] {
            assert_eq!(op.as_str().parse::<ChangeOp>().unwrap(), op);
            assert_eq!(op.to_string(), op.as_str());
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
        }
        assert!("changed".parse::<ChangeOp>().is_err());

        let fc = change(
            "labels[key=environment]",
            None,
            Some(json!({"key": "environment"})),
        );
        let v = serde_json::to_value(&fc).unwrap();
        assert_eq!(
            v,
            json!({"path": "labels[key=environment]", "new": {"key": "environment"}})
        );
        assert_eq!(serde_json::from_value::<FieldChange>(v).unwrap(), fc);
        // A JSON null is a present value, distinct from an absent side.
        let fc = change("x", Some(json!(null)), None);
        let v = serde_json::to_value(&fc).unwrap();
        assert_eq!(v, json!({"path": "x", "old": null}));
        assert_eq!(serde_json::from_value::<FieldChange>(v).unwrap(), fc);
    }

    // ---- Randomized property checks -------------------------------------------------------

    /// Keys for random objects: identity fields (so arrays of random objects are sometimes
    /// keyed, sometimes mixed), ordinary keys and keys that need quoting in paths.
    const KEYS: [&str; 14] = [
        "id", "roleId", "key", "email", "name", "value", "type", "labels", "settings", "a.b", "",
        "x y", "$", "q\"",
    ];
    const STRINGS: [&str; 8] = ["a", "b", "prod", "", "a]b", " x", "Website", "r1"];

    struct Gen(fastrand::Rng);

    impl Gen {
        fn scalar(&mut self) -> Value {
            match self.0.u8(0..5) {
                0 => Value::Null,
                1 => json!(self.0.bool()),
                2 => json!(self.0.i64(-3..4)),
                _ => json!(STRINGS[self.0.usize(..STRINGS.len())]),
            }
        }

        fn value(&mut self, depth: u32) -> Value {
            if depth == 0 {
                return self.scalar();
            }
            match self.0.u8(0..10) {
                0..=1 => self.scalar(),
                2..=4 => self.object(depth),
                5..=7 => self.keyed_array(depth),
                8 => Value::Array((0..self.0.usize(0..4)).map(|_| self.scalar()).collect()),
                _ => Value::Array(
                    (0..self.0.usize(0..4))
                        .map(|_| self.value(depth - 1))
                        .collect(),
                ),
            }
        }

        fn object(&mut self, depth: u32) -> Value {
            let mut m = Map::new();
            for _ in 0..self.0.usize(0..5) {
                m.insert(
                    KEYS[self.0.usize(..KEYS.len())].to_string(),
                    self.value(depth.saturating_sub(1)),
                );
            }
            Value::Object(m)
        }

        fn keyed_element(&mut self, field: &str, depth: u32) -> Value {
            let mut m = match self.object(depth) {
                Value::Object(m) => m,
                _ => unreachable!(),
            };
            // Identity pools small enough that duplicates (hence unkeyed arrays) happen now and then;
            // `7` and "7" collide too.
            let id = match self.0.u8(0..8) {
                0 => json!(self.0.u8(0..20)),
                1 => json!(["a]b", "", " x", "a@x.com", "7"][self.0.usize(..5)]),
                _ => json!(format!("u{}", self.0.u8(0..20))),
            };
            // Mostly one identity field per element, so that most generated arrays are keyed.
            if self.0.u8(0..8) != 0 {
                m.retain(|k, _| !crate::canonical::IDENTITY_FIELDS.contains(&k.as_str()));
            }
            m.insert(field.to_string(), id);
            Value::Object(m)
        }

        fn keyed_array(&mut self, depth: u32) -> Value {
            let field = ["id", "roleId", "key", "email"][self.0.usize(..4)];
            Value::Array(
                (0..self.0.usize(0..5))
                    .map(|_| self.keyed_element(field, depth - 1))
                    .collect(),
            )
        }

        /// Shuffles every identity-keyed array, at any depth: a change of order only.
        fn shuffle_keyed(&mut self, v: &mut Value) {
            match v {
                Value::Object(m) => m.values_mut().for_each(|v| self.shuffle_keyed(v)),
                Value::Array(items) => {
                    items.iter_mut().for_each(|v| self.shuffle_keyed(v));
                    if array_identities(items).is_some() {
                        self.0.shuffle(items);
                    }
                }
                _ => {}
            }
        }

        /// One random edit somewhere in `v` (possibly a no-op, e.g. a scalar replaced by itself).
        fn mutate(&mut self, v: &mut Value, depth: u32) {
            let dig = self.0.u8(0..4) != 0;
            match v {
                Value::Object(m) if dig && !m.is_empty() => {
                    let k = m.keys().nth(self.0.usize(..m.len())).unwrap().clone();
                    self.mutate(m.get_mut(&k).unwrap(), depth.saturating_sub(1));
                }
                Value::Object(m) => {
                    if self.0.bool() && !m.is_empty() {
                        let k = m.keys().nth(self.0.usize(..m.len())).unwrap().clone();
                        m.remove(&k);
                    } else {
                        m.insert(
                            KEYS[self.0.usize(..KEYS.len())].to_string(),
                            self.value(depth),
                        );
                    }
                }
                Value::Array(items) if dig && !items.is_empty() => {
                    let i = self.0.usize(..items.len());
                    self.mutate(&mut items[i], depth.saturating_sub(1));
                }
                Value::Array(items) => match self.0.u8(0..4) {
                    0 if !items.is_empty() => {
                        items.remove(self.0.usize(..items.len()));
                    }
                    1 => self.0.shuffle(items),
                    2 => {
                        let field = match array_identities(items) {
                            Some((field, _)) => field,
                            None => ["id", "roleId", "key", "email"][self.0.usize(..4)],
                        };
                        let e = self.keyed_element(field, depth);
                        items.push(e);
                    }
                    _ => items.push(self.value(depth)),
                },
                _ => *v = self.value(depth.min(2)),
            }
        }
    }

    enum Seg {
        Key(String),
        Select(String, String),
    }

    /// A reader for the documented path syntax, to check that every path names its values.
    fn parse_path(path: &str) -> Vec<Seg> {
        fn json_string(s: &str) -> (String, usize) {
            let mut it = serde_json::Deserializer::from_str(s).into_iter::<String>();
            let v = it.next().unwrap().unwrap();
            (v, it.byte_offset())
        }
        if path == "$" {
            return Vec::new();
        }
        let mut segs = Vec::new();
        let mut rest = path;
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                if r.starts_with('"') {
                    let (k, n) = json_string(r);
                    segs.push(Seg::Key(k));
                    rest = r[n..].strip_prefix(']').unwrap();
                } else {
                    let eq = r.find('=').unwrap();
                    let field = r[..eq].to_string();
                    let r = &r[eq + 1..];
                    let (value, r) = if r.starts_with('"') {
                        let (v, n) = json_string(r);
                        (v, &r[n..])
                    } else {
                        let end = r.find(']').unwrap();
                        (r[..end].to_string(), &r[end..])
                    };
                    segs.push(Seg::Select(field, value));
                    rest = r.strip_prefix(']').unwrap();
                }
            } else {
                let r = if first {
                    rest
                } else {
                    rest.strip_prefix('.').unwrap()
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                assert!(end > 0, "empty bare key in {path}");
                segs.push(Seg::Key(r[..end].to_string()));
                rest = &r[end..];
            }
            first = false;
        }
        segs
    }

    fn resolve<'a>(mut v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
        for seg in segs {
            v = match seg {
                Seg::Key(k) => v.as_object()?.get(k)?,
                Seg::Select(field, value) => v.as_array()?.iter().find(|e| {
                    e.as_object()
                        .and_then(identity)
                        .is_some_and(|(f, id)| f == field && &id == value)
                })?,
            };
        }
        Some(v)
    }

    #[test]
    fn random_values_properties() {
        let (mut equal, mut different, mut selected) = (0, 0, 0);
        for seed in 0..400 {
            let mut g = Gen(fastrand::Rng::with_seed(seed));
            let mut a = g.object(4);
            // Resource-like: one keyed array near the top, with keyed arrays inside.
            a["permissions"] = g.keyed_array(4);
            let ca = canonicalize(a.clone());

            assert!(field_changes(&a, &a).is_empty(), "seed {seed}");
            assert_eq!(canonicalize(ca.clone()), ca, "idempotent, seed {seed}");
            assert!(is_canonical(&ca), "seed {seed}");
            assert_eq!(is_canonical(&a), a == ca, "seed {seed}");

            let mut shuffled = a.clone();
            g.shuffle_keyed(&mut shuffled);
            assert_eq!(canonicalize(shuffled.clone()), ca, "shuffle, seed {seed}");
            assert!(field_changes(&a, &shuffled).is_empty(), "seed {seed}");

            let mut b = a.clone();
            for _ in 0..g.0.usize(0..3) {
                g.mutate(&mut b, 3);
            }
            g.shuffle_keyed(&mut b);
            let cb = canonicalize(b.clone());
            let changes = field_changes(&a, &b);
            assert_eq!(changes.is_empty(), ca == cb, "iff, seed {seed}: {a} vs {b}");
            if changes.is_empty() {
                equal += 1;
            } else {
                different += 1;
            }

            // Sorted, unique paths; every change names the values found at its path.
            assert!(
                changes.windows(2).all(|w| w[0].path < w[1].path),
                "seed {seed}"
            );
            for c in &changes {
                selected += usize::from(c.path.contains('='));
                assert!(c.old.is_some() || c.new.is_some());
                let segs = parse_path(&c.path);
                assert_eq!(
                    resolve(&ca, &segs),
                    c.old.as_ref(),
                    "old at {}, seed {seed}",
                    c.path
                );
                assert_eq!(
                    resolve(&cb, &segs),
                    c.new.as_ref(),
                    "new at {}, seed {seed}",
                    c.path
                );
            }

            // Symmetry: the reverse diff swaps old and new, at the same paths.
            let reverse: Vec<FieldChange> = field_changes(&b, &a)
                .into_iter()
                .map(|c| change(&c.path, c.new, c.old))
                .collect();
            assert_eq!(reverse, changes, "symmetry, seed {seed}");
        }
        // Both outcomes are exercised, and changes inside matched elements too.
        assert!(
            equal > 40 && different > 200 && selected > 60,
            "equal {equal}, different {different}, selected {selected}"
        );
    }

    #[test]
    fn random_unrelated_values_iff() {
        let mut g = Gen(fastrand::Rng::with_seed(7));
        for _ in 0..300 {
            let a = g.value(3);
            let b = g.value(3);
            let same = canonicalize(a.clone()) == canonicalize(b.clone());
            assert_eq!(field_changes(&a, &b).is_empty(), same, "{a} vs {b}");
        }
    }
}
