//! API drift: a field that Segment's API starts (or stops) returning on most resources of a kind
//! in one release, while nobody changed anything.
//!
//! Segment adds fields to its API over time. Without this module, such a release makes every
//! resource of the kind "modified": hundreds of change alerts, findings re-opened or resolved,
//! and attributions to whoever happened to edit something. [`mark`] recognises those field
//! changes (the rule is in ARCHITECTURE.md, "API drift") and sets [`FieldChange::api_drift`]; the
//! versions are stored as usual, so history stays exact, but rules never see drift
//! ([`is_drift_only`], [`real_fields`]) and drift is attributed to no one.
//!
//! [`mark`] is pure: bodies of stored versions come through its `load` argument, and only when
//! a group of candidate field changes is large enough to be drift, so quiet and ordinary polls
//! load nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::diff::{ChangeOp, CurrentVersion, FieldChange, PlannedChange, ResourceChange};
use crate::model::{Attribution, Resource, ResourceKind};

/// Whether a field appeared or disappeared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Absent before, present now: the API now returns it.
    Added,
    /// Present before, absent now: the API no longer returns it.
    Removed,
}

/// One field that a release added to (or removed from) the resources of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftSummary {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The normalised path: every `[field=value]` selector written `[]`.
    pub path: String,
    /// Whether the API now returns the field or no longer does.
    pub direction: Direction,
    /// How many resources' changes carry it.
    pub resources: usize,
}

impl DriftSummary {
    /// `Segment's API now returns `createdAt` on 534 users` (or `no longer returns`).
    pub fn describe(&self) -> String {
        let verb = match self.direction {
            Direction::Added => "now returns",
            Direction::Removed => "no longer returns",
        };
        let noun = self.kind.as_str().replace('_', " ");
        let plural = if self.resources == 1 { "" } else { "s" };
        format!(
            "Segment's API {verb} `{}` on {} {noun}{plural}",
            self.path, self.resources
        )
    }
}

/// Whether every field of a change is API drift: a modified resource with nothing else changed.
/// Such a change is stored and shown, but no rule sees it and no one is named as its author.
pub fn is_drift_only(change: &ResourceChange) -> bool {
    change.op == ChangeOp::Modified
        && !change.fields.is_empty()
        && change.fields.iter().all(|f| f.api_drift)
}

/// The fields of a change that are not API drift: what change rules see.
pub fn real_fields(fields: &[FieldChange]) -> Cow<'_, [FieldChange]> {
    if fields.iter().any(|f| f.api_drift) {
        Cow::Owned(fields.iter().filter(|f| !f.api_drift).cloned().collect())
    } else {
        Cow::Borrowed(fields)
    }
}

/// One step of a normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object key.
    Key(String),
    /// Any element of an array (a `[field=value]` selector, normalised).
    Any,
}

/// A path with its selectors normalised: its text and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Normalised {
    text: String,
    steps: Vec<Step>,
}

/// Normalises a [diff path](crate::diff#paths): every `[field=value]` selector becomes `[]`,
/// keys (bracketed JSON-string keys included) are kept as written. `None` for the root `$`,
/// for a path that does not parse, and for a path that ends in a selector: that is an array
/// element appearing or disappearing (a member, a permission), which is data, not a field of
/// the API.
fn normalise(path: &str) -> Option<Normalised> {
    if path == "$" || path.is_empty() {
        return None;
    }
    let bytes = path.as_bytes();
    let mut text = String::with_capacity(path.len());
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' if bytes.get(i + 1) == Some(&b'"') => {
                let end = json_string_end(bytes, i + 1)?;
                if bytes.get(end) != Some(&b']') {
                    return None;
                }
                let key: String = serde_json::from_str(&path[i + 1..end]).ok()?;
                text.push_str(&path[i..=end]);
                steps.push(Step::Key(key));
                i = end + 1;
            }
            b'[' => {
                let value = i + path[i..].find('=')? + 1;
                let close = if bytes.get(value) == Some(&b'"') {
                    json_string_end(bytes, value)?
                } else {
                    value + path[value..].find(']')?
                };
                if bytes.get(close) != Some(&b']') {
                    return None;
                }
                text.push_str("[]");
                steps.push(Step::Any);
                i = close + 1;
            }
            b'.' if i > 0 => {
                text.push('.');
                i += 1;
                i = plain_key(path, i, &mut text, &mut steps)?;
            }
            _ if i == 0 => i = plain_key(path, i, &mut text, &mut steps)?,
            _ => return None,
        }
    }
    match steps.last() {
        Some(Step::Key(_)) => Some(Normalised { text, steps }),
        _ => None,
    }
}

/// Reads a plain key starting at `start` (up to the next `.` or `[`); returns where it ends.
fn plain_key(path: &str, start: usize, text: &mut String, steps: &mut Vec<Step>) -> Option<usize> {
    let len = path[start..].find(['.', '[']).unwrap_or(path.len() - start);
    if len == 0 {
        return None;
    }
    let key = &path[start..start + len];
    text.push_str(key);
    steps.push(Step::Key(key.to_string()));
    Some(start + len)
}

/// The index just past the JSON string starting with the quote at `start`.
fn json_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Whether `value` has something (`null` included) at the normalised path: some element of
/// each array on the way counts.
fn has_value(value: &Value, steps: &[Step]) -> bool {
    match steps.split_first() {
        None => true,
        Some((Step::Key(k), rest)) => value
            .as_object()
            .and_then(|m| m.get(k))
            .is_some_and(|v| has_value(v, rest)),
        Some((Step::Any, rest)) => value
            .as_array()
            .is_some_and(|items| items.iter().any(|v| has_value(v, rest))),
    }
}

/// The field changes of one (kind, normalised path, direction).
struct Group {
    steps: Vec<Step>,
    /// (change index, field index) of every member.
    fields: Vec<(usize, usize)>,
    /// The changes (one per resource) the group covers.
    changes: BTreeSet<usize>,
}

/// Finds the API drift among a poll's changes and marks it: sets `api_drift` on every field
/// change of a drift group and clears the attribution of changes that are nothing but drift.
/// Returns one summary per group, sorted by kind, path and direction.
///
/// - `changes`: the poll's changes, attributed already (the rule counts attributed changes);
/// - `resources`: everything this poll collected;
/// - `current`: the current versions before this poll (the diff base);
/// - `trail_read`: whether this poll read the audit trail, so that an unattributed change is
///   evidence that nobody made it (required for a kind with a single resource);
/// - `load`: a stored version's body, called only for kinds with a group that passes the
///   coverage test.
pub fn mark<E>(
    changes: &mut [PlannedChange<'_>],
    resources: &[Resource],
    current: &HashMap<(ResourceKind, String), CurrentVersion>,
    trail_read: bool,
    mut load: impl FnMut(i64) -> Result<Value, E>,
) -> Result<Vec<DriftSummary>, E> {
    let mut groups: BTreeMap<(ResourceKind, String, Direction), Group> = BTreeMap::new();
    for (ci, planned) in changes.iter().enumerate() {
        let change = &planned.change;
        if change.op != ChangeOp::Modified {
            continue;
        }
        for (fi, field) in change.fields.iter().enumerate() {
            let direction = match (&field.old, &field.new) {
                (None, Some(_)) => Direction::Added,
                (Some(_), None) => Direction::Removed,
                _ => continue,
            };
            let Some(norm) = normalise(&field.path) else {
                continue;
            };
            let group = groups
                .entry((change.kind, norm.text, direction))
                .or_insert_with(|| Group {
                    steps: norm.steps,
                    fields: Vec::new(),
                    changes: BTreeSet::new(),
                });
            group.fields.push((ci, fi));
            group.changes.insert(ci);
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }

    // Resources of each kind present both in the base and in this poll.
    let mut in_both: HashMap<ResourceKind, usize> = HashMap::new();
    for r in resources {
        if current.contains_key(&(r.kind, r.id.clone())) {
            *in_both.entry(r.kind).or_default() += 1;
        }
    }
    let mut before_bodies: HashMap<ResourceKind, Vec<Value>> = HashMap::new();
    let mut after_bodies: HashMap<ResourceKind, Vec<Value>> = HashMap::new();
    let mut summaries = Vec::new();
    for ((kind, path, direction), group) in &groups {
        let covered = group.changes.len();
        let both = in_both.get(kind).copied().unwrap_or(0);
        // (b) Most of the kind: at least half, and at least two resources unless the kind has
        // exactly one, which qualifies only when the audit trail could have named an author.
        let most = 2 * covered >= both && (covered >= 2 || (both == 1 && trail_read));
        if !most {
            continue;
        }
        // (c) Nobody did it: fewer than half of the changes have an audit event.
        let attributed = group
            .changes
            .iter()
            .filter(|&&ci| changes[ci].change.attribution.event_id.is_some())
            .count();
        if 2 * attributed >= covered {
            continue;
        }
        // (a) New to (or gone from) the whole kind, not only from the changed resources.
        let new_to_kind = match direction {
            Direction::Added => {
                if !before_bodies.contains_key(kind) {
                    let mut bodies = Vec::new();
                    for ((k, _), v) in current {
                        if k == kind {
                            bodies.push(load(v.version_id)?);
                        }
                    }
                    before_bodies.insert(*kind, bodies);
                }
                !before_bodies[kind]
                    .iter()
                    .any(|b| has_value(b, &group.steps))
            }
            Direction::Removed => {
                let bodies = after_bodies.entry(*kind).or_insert_with(|| {
                    resources
                        .iter()
                        .filter(|r| r.kind == *kind)
                        .map(|r| {
                            serde_json::from_str(&r.body)
                                .expect("a resource body is JSON we serialised")
                        })
                        .collect()
                });
                !bodies.iter().any(|b| has_value(b, &group.steps))
            }
        };
        if !new_to_kind {
            continue;
        }
        for &(ci, fi) in &group.fields {
            changes[ci].change.fields[fi].api_drift = true;
        }
        summaries.push(DriftSummary {
            kind: *kind,
            path: path.clone(),
            direction: *direction,
            resources: covered,
        });
    }
    for planned in changes.iter_mut() {
        if is_drift_only(&planned.change) {
            planned.change.attribution = Attribution::default();
        }
    }
    Ok(summaries)
}

/// [`mark`], then one log line per drift group.
pub fn apply<E>(
    changes: &mut [PlannedChange<'_>],
    resources: &[Resource],
    current: &HashMap<(ResourceKind, String), CurrentVersion>,
    trail_read: bool,
    load: impl FnMut(i64) -> Result<Value, E>,
) -> Result<Vec<DriftSummary>, E> {
    let summaries = mark(changes, resources, current, trail_read, load)?;
    for s in &summaries {
        tracing::info!(
            kind = %s.kind,
            path = %s.path,
            resources = s.resources,
            "{}; recorded as API drift (no alerts, no attribution)",
            s.describe()
        );
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests;
