//! Diff stub (replaced by the real module).
#![allow(missing_docs)]
use crate::model::{Resource, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Added,
    Removed,
    Modified,
}
impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Added => "added",
            ChangeOp::Removed => "removed",
            ChangeOp::Modified => "modified",
        }
    }
}
impl std::str::FromStr for ChangeOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "added" => Ok(ChangeOp::Added),
            "removed" => Ok(ChangeOp::Removed),
            "modified" => Ok(ChangeOp::Modified),
            _ => Err(s.into()),
        }
    }
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub kind: ResourceKind,
    pub resource_id: String,
    pub name: String,
    pub op: ChangeOp,
    pub fields: Vec<FieldChange>,
    pub text_diff: String,
}
impl fmt::Display for ResourceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.op.as_str(), self.kind, self.name)
    }
}
pub fn diff_resource(
    kind: ResourceKind,
    resource_id: &str,
    name: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<ResourceChange> {
    if before == after {
        return None;
    }
    let op = match (before, after) {
        (None, _) => ChangeOp::Added,
        (_, None) => ChangeOp::Removed,
        _ => ChangeOp::Modified,
    };
    Some(ResourceChange {
        kind,
        resource_id: resource_id.into(),
        name: name.into(),
        op,
        fields: vec![],
        text_diff: String::new(),
    })
}
// ---- plan (segwatch main) ----

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
    /// The field-level changes, sorted by kind and id (empty for a baseline).
    pub changes: Vec<ResourceChange>,
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
                    delta.changes.extend(diff_resource(
                        r.kind,
                        &r.id,
                        &r.name,
                        None,
                        Some(&parse(r)),
                    ));
                }
            }
            Some(cur) if cur.hash != r.hash => {
                delta.modified.push((r, cur.version_id));
                let before = load(cur.version_id)?;
                delta.changes.extend(diff_resource(
                    r.kind,
                    &r.id,
                    &r.name,
                    Some(&before),
                    Some(&parse(r)),
                ));
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
        delta
            .changes
            .extend(diff_resource(*kind, id, &cur.name, Some(&before), None));
    }
    delta
        .changes
        .sort_by(|a, b| (a.kind, &a.resource_id).cmp(&(b.kind, &b.resource_id)));
    Ok(delta)
}
