//! The data-flow map at an instant, from what the store holds (`segwatch flows`, the report's
//! "Data flows" section): which destinations and warehouses each source's data takes.
//!
//! The state is the latest complete snapshot observed at or before the instant (as for
//! `segwatch access`); the map is `segwatch_core::flows` ([`FlowMap`]): this module selects the
//! snapshots, resolves `--source` and `--destination` against them, and narrows and diffs the
//! maps. [`render`] writes the text and Graphviz outputs, [`graph`] lays the map out for the
//! report's SVG. docs/FLOWS.md gives the semantics.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub mod graph;
pub mod render;

use segwatch_core::flows::{FlowDelta, FlowMap, PersonalPatterns, TargetKind};
use segwatch_core::ids::SnapshotId;
use segwatch_core::time::Timestamp;
use segwatch_store::audit::{self, AuditError};
use segwatch_store::{Store, StoreError};

/// What to ask: the map at `at`, narrowed to a source or a destination, and how it changed
/// since `since`.
#[derive(Debug, Clone)]
pub struct FlowQuery {
    /// The instant: the state observed by the latest complete poll at or before it.
    pub at: DateTime<Utc>,
    /// An earlier instant to compare with, if any.
    pub since: Option<DateTime<Utc>>,
    /// A source's id or name.
    pub source: Option<String>,
    /// A destination's or warehouse's id or name.
    pub destination: Option<String>,
}

/// Why the question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    /// No snapshot at that instant, or the database failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Reading the snapshot's resources failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--source` or `--destination` names nothing of the snapshots.
    #[error(
        "{flag}: no {what} with id or name `{key}` at {at} (snapshot {snapshot_id}, observed at {observed_at})"
    )]
    Unknown {
        /// `--source` or `--destination`.
        flag: &'static str,
        /// `source`, or `destination or warehouse`.
        what: &'static str,
        /// The id or name given.
        key: String,
        /// The instant asked for.
        at: String,
        /// The snapshot searched.
        snapshot_id: i64,
        /// When it was observed.
        observed_at: Timestamp,
    },
    /// `--since` is not before `--at`.
    #[error("--since ({since}) must be before --at ({at})")]
    SinceNotBefore {
        /// The earlier instant asked for.
        since: String,
        /// The instant asked for.
        at: String,
    },
    /// `--source` or `--destination` names several resources.
    #[error("{flag}: {} resources are named `{key}` at {at}; name one by id: {}", candidates.len(), candidates.join(", "))]
    Ambiguous {
        /// `--source` or `--destination`.
        flag: &'static str,
        /// The name given.
        key: String,
        /// The instant asked for.
        at: String,
        /// `kind id` of each.
        candidates: Vec<String>,
    },
}

/// The answer: the snapshot it was read from, the map, and the changes since `--since`.
#[derive(Debug, Clone, Serialize)]
pub struct FlowsReport {
    /// The instant asked for.
    pub at: String,
    /// The latest complete snapshot observed at or before it.
    pub snapshot_id: i64,
    /// When that snapshot was observed.
    pub observed_at: Timestamp,
    /// The personal-field patterns the map was computed with.
    pub personal_field_patterns: Vec<String>,
    /// Sources, destinations and warehouses, and the flows between them.
    #[serde(flatten)]
    pub map: FlowMap,
    /// How the map changed since `--since`; `None` without it.
    pub since: Option<FlowsSince>,
}

/// The map's changes between the `--since` snapshot and the `--at` one.
#[derive(Debug, Clone, Serialize)]
pub struct FlowsSince {
    /// The earlier instant asked for.
    pub at: String,
    /// The latest complete snapshot observed at or before it.
    pub snapshot_id: i64,
    /// When that snapshot was observed.
    pub observed_at: Timestamp,
    /// Flows added, removed and changed.
    #[serde(flatten)]
    pub delta: FlowDelta,
}

/// The map of stored snapshot `snapshot` (complete).
pub fn map_of_snapshot(
    store: &Store,
    workspace_id: i64,
    snapshot: SnapshotId,
    patterns: &PersonalPatterns,
) -> Result<FlowMap, StoreError> {
    // Only what the map reads is converted: users and groups are most of a large workspace.
    let resources: Vec<segwatch_core::model::Resource> = store
        .resources_at(workspace_id, snapshot)?
        .into_iter()
        .filter(|r| segwatch_core::flows::stored::FLOW_KINDS.contains(&r.kind))
        .map(crate::stored::resource)
        .collect();
    Ok(FlowMap::compute(&resources, patterns))
}

/// A narrowing resolved against the maps.
enum Narrow {
    All,
    Source(String),
    Target(TargetKind, String),
}

impl Narrow {
    fn apply(&self, map: &FlowMap) -> FlowMap {
        match self {
            Narrow::All => map.clone(),
            Narrow::Source(id) => map.of_source(id),
            Narrow::Target(kind, id) => map.of_target(*kind, id),
        }
    }
}

/// The map at `query.at` (narrowed as asked), and its changes since `query.since`. A
/// `--source` or `--destination` that names nothing in either snapshot is an error.
pub fn flows_at(
    store: &Store,
    workspace_id: i64,
    query: &FlowQuery,
    patterns: &PersonalPatterns,
) -> Result<FlowsReport, FlowsError> {
    let at = audit::format_instant(query.at);
    if let Some(since) = query.since.filter(|since| *since >= query.at) {
        return Err(FlowsError::SinceNotBefore {
            since: audit::format_instant(since),
            at,
        });
    }
    let (snapshot_id, observed_at) = audit::snapshot_at(store, workspace_id, &at)?;
    let map = map_of_snapshot(store, workspace_id, SnapshotId(snapshot_id), patterns)?;
    let before = match query.since {
        Some(since) => {
            let since = audit::format_instant(since);
            let (id, observed) = audit::snapshot_at(store, workspace_id, &since)?;
            let old = map_of_snapshot(store, workspace_id, SnapshotId(id), patterns)?;
            Some((since, id, observed, old))
        }
        None => None,
    };
    let maps: Vec<&FlowMap> = std::iter::once(&map)
        .chain(before.as_ref().map(|b| &b.3))
        .collect();
    let unknown = |flag, what, key: &str| FlowsError::Unknown {
        flag,
        what,
        key: key.to_string(),
        at: at.clone(),
        snapshot_id,
        observed_at,
    };
    let narrow = match (&query.source, &query.destination) {
        (Some(key), _) => {
            let id = resolve(&maps, key, "--source", &at, |m| {
                m.sources
                    .iter()
                    .map(|s| (s.id.clone(), s.name.clone(), "source".to_string()))
                    .collect()
            })?
            .ok_or_else(|| unknown("--source", "source", key))?;
            Narrow::Source(id)
        }
        (None, Some(key)) => {
            let key_of = |m: &FlowMap| {
                m.targets
                    .iter()
                    .map(|t| (t.key(), t.name.clone(), t.kind.as_str().to_string()))
                    .collect()
            };
            // Targets are keyed `kind:id`, so a bare id is tried with each kind, then as a name.
            let mut found = None;
            for candidate in [
                format!("destination:{key}"),
                format!("warehouse:{key}"),
                key.clone(),
            ] {
                found = resolve(&maps, &candidate, "--destination", &at, key_of)?;
                if found.is_some() {
                    break;
                }
            }
            let found =
                found.ok_or_else(|| unknown("--destination", "destination or warehouse", key))?;
            let (kind, id) = found.split_once(':').expect("a target key");
            let kind = if kind == "warehouse" {
                TargetKind::Warehouse
            } else {
                TargetKind::Destination
            };
            Narrow::Target(kind, id.to_string())
        }
        (None, None) => Narrow::All,
    };
    let shown = narrow.apply(&map);
    let since = before.map(|(since, id, observed, old)| FlowsSince {
        at: since,
        snapshot_id: id,
        observed_at: observed,
        delta: shown.diff(&narrow.apply(&old)),
    });
    Ok(FlowsReport {
        at,
        snapshot_id,
        observed_at,
        personal_field_patterns: patterns.patterns().map(str::to_string).collect(),
        map: shown,
        since,
    })
}

/// The id of the one node named `key` in any of `maps` (the `--at` map first): by id, else by
/// exact name. `nodes` lists each map's (id, name, kind).
fn resolve(
    maps: &[&FlowMap],
    key: &str,
    flag: &'static str,
    at: &str,
    nodes: impl Fn(&FlowMap) -> Vec<(String, String, String)>,
) -> Result<Option<String>, FlowsError> {
    for map in maps {
        let all = nodes(map);
        if all.iter().any(|(id, _, _)| id == key) {
            return Ok(Some(key.to_string()));
        }
        let named: Vec<&(String, String, String)> =
            all.iter().filter(|(_, name, _)| name == key).collect();
        match named.as_slice() {
            [] => {}
            [(id, _, _)] => return Ok(Some(id.clone())),
            many => {
                return Err(FlowsError::Ambiguous {
                    flag,
                    key: key.to_string(),
                    at: at.to_string(),
                    candidates: many
                        .iter()
                        .map(|(id, _, kind)| {
                            let bare = id.split_once(':').map_or(id.as_str(), |(_, b)| b);
                            format!("{kind} {bare}")
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(None)
}
