//! Planning a poll: which resources are new, changed or gone, compared by content hash so that
//! only the changed ones are parsed and diffed.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{ResourceChange, diff_resource};
use crate::model::{Resource, ResourceKind};

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
