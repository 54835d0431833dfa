//! The data-flow map of one snapshot: for each source, the destinations and warehouses its
//! data takes, whether each way is enabled, what stands on the way (filters, transformations)
//! and which personal-data fields each destination receives. docs/FLOWS.md gives the
//! semantics.
//!
//! [`FlowMap::compute`] reads it from a snapshot's resources; [`FlowMap::diff`] compares two
//! maps (edges added, removed, or whose enabled state or personal fields changed). Both are
//! pure.
//!
//! - A source's data goes to each destination whose `sourceId` is the source (`via`
//!   `destination`, or `destination function NAME` when the destination is an instance of a
//!   collected destination function, matched by its catalog id `metadata.id`), and to each
//!   warehouse listing it in `connectedSourceIds` (`via` `warehouse`).
//! - A flow is enabled when both its source and its destination or warehouse are (a missing
//!   `enabled` counts as enabled).
//! - A source is *production* when its `environment` label is `prod` or `production` (any
//!   case), as the starter rules read it.
//! - Personal fields come from the field names a destination is configured to receive
//!   ([`personal`]): today its mapping-like settings.
//!
//! **Extension point.** What stands on a flow's way and what it carries is gathered per
//! destination by [`Extras::gather`]: when destination filters, transformations, Actions
//! subscriptions or reverse ETL models become collected kinds, their resources are read there
//! (one match arm each) into [`Extras`], and every flow picks them up through
//! [`Extras::apply`]. The edge type ([`Flow`]) already carries `filters`, `transformations`
//! and `personal_fields`.

pub mod personal;
pub mod stored;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::model::{Resource, ResourceKind};
pub use personal::{MappedField, PersonalField, PersonalPatterns};

/// What receives a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A destination (`sourceId` names its one source).
    Destination,
    /// A warehouse (`connectedSourceIds` names its sources).
    Warehouse,
}

impl TargetKind {
    /// `destination` or `warehouse`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Destination => "destination",
            TargetKind::Warehouse => "warehouse",
        }
    }
}

/// A label of a source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SourceLabel {
    /// Its key, e.g. `environment`.
    pub key: String,
    /// Its value, e.g. `prod`.
    pub value: String,
}

/// A resource named by id and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NamedRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A source of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceNode {
    /// Segment's id.
    pub id: String,
    /// Its name (its id when the snapshot does not hold it).
    pub name: String,
    /// Whether it is enabled; `None` when the snapshot does not say (or does not hold it).
    pub enabled: Option<bool>,
    /// Its labels, sorted.
    pub labels: Vec<SourceLabel>,
    /// Its `environment` label's value.
    pub environment: Option<String>,
    /// Whether its environment is `prod` or `production`.
    pub production: bool,
    /// The tracking plans connected to it, by name.
    pub tracking_plans: Vec<NamedRef>,
    /// Whether the snapshot holds it (a destination may name a source it does not list).
    pub present: bool,
}

/// A destination or warehouse of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetNode {
    /// Destination or warehouse.
    pub kind: TargetKind,
    /// Segment's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it is enabled; `None` when the snapshot does not say.
    pub enabled: Option<bool>,
    /// Its catalog entry's name (`metadata.name`), e.g. `Amplitude`.
    pub catalog: Option<String>,
    /// The destination function it is an instance of, if any.
    pub function: Option<NamedRef>,
}

impl TargetNode {
    /// `destination:<id>` or `warehouse:<id>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// Something on a flow's way that can stop or change data: a destination filter or a
/// transformation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Step {
    /// What it is, e.g. `destination_filter` or `transformation`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it is enabled; `None` when not known.
    pub enabled: Option<bool>,
}

/// One way a source's data takes: an edge of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The source's id.
    pub source_id: String,
    /// What receives the data.
    pub target_kind: TargetKind,
    /// Its id.
    pub target_id: String,
    /// `destination`, `destination function NAME` or `warehouse`.
    pub via: String,
    /// Whether data flows: the source and the target are both enabled.
    pub enabled: bool,
    /// Destination filters on the way (empty until they are collected).
    pub filters: Vec<Step>,
    /// Transformations on the way (empty until they are collected).
    pub transformations: Vec<Step>,
    /// The personal-data fields the target is configured to receive, sorted.
    pub personal_fields: Vec<PersonalField>,
}

impl Flow {
    /// `<source id>-><target id>`: the edge's name in every output.
    pub fn edge_id(&self) -> String {
        format!("{}->{}", self.source_id, self.target_id)
    }

    fn key(&self) -> (String, TargetKind, String) {
        (
            self.source_id.clone(),
            self.target_kind,
            self.target_id.clone(),
        )
    }

    /// The personal fields' names, sorted and distinct.
    pub fn personal_field_names(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .personal_fields
            .iter()
            .map(|p| p.field.clone())
            .collect();
        names.into_iter().collect()
    }
}

/// The data-flow map of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowMap {
    /// Every source (with or without flows), by name then id.
    pub sources: Vec<SourceNode>,
    /// Every destination and warehouse, destinations first, each by name then id.
    pub targets: Vec<TargetNode>,
    /// Every flow, in source order, then target order.
    pub flows: Vec<Flow>,
}

/// What stands on the way of, and what is carried to, each destination or warehouse: read from
/// the resources of kinds other than sources, destinations and warehouses (see the module docs).
#[derive(Debug, Default)]
pub struct Extras {
    /// By (target kind, target id).
    by_target: HashMap<(TargetKind, String), TargetExtras>,
    /// Reverse ETL models by id: (name, the source whose warehouse query it runs).
    models: HashMap<String, (String, Option<String>)>,
}

#[derive(Debug, Default)]
struct TargetExtras {
    filters: Vec<Step>,
    transformations: Vec<Step>,
    fields: Vec<MappedField>,
    /// Reverse ETL models its subscriptions sync (`modelId`).
    models: BTreeSet<String>,
}

impl Extras {
    /// Reads what the snapshot holds about filters, transformations and received fields. Today
    /// only destinations' mapping-like settings name fields; new kinds add a match arm here:
    /// a destination filter's `Step` goes to `filters` of its destination, a transformation's
    /// to `transformations` of the destinations it applies to, an Actions subscription's
    /// mapped fields to `fields` of its destination (through [`MappedField`]).
    pub fn gather<R: Borrow<Resource>>(resources: &[R]) -> Extras {
        let mut extras = Extras::default();
        // Destinations by source, with their catalog id: a transformation applies to a source's
        // destinations, or to those of one catalog entry (`destinationMetadataId`).
        let mut by_source: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for r in resources.iter().map(Borrow::<Resource>::borrow) {
            // ReverseEtlModel (`id`, `name`, `sourceId`).
            if r.kind == ResourceKind::ReverseEtlModel {
                let body = parse(&r.body);
                let name = body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(&r.name)
                    .to_owned();
                let source = body
                    .get("sourceId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                extras.models.insert(r.id.clone(), (name, source));
            }
            if r.kind == ResourceKind::Destination {
                let body = parse(&r.body);
                let fields = personal::mapped_fields_in_settings(
                    body.get("settings").unwrap_or(&Value::Null),
                );
                extras.target(&r.id).fields.extend(fields);
                if let Some(source) = body.get("sourceId").and_then(Value::as_str) {
                    let catalog = body
                        .pointer("/metadata/id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    by_source
                        .entry(source.to_owned())
                        .or_default()
                        .push((r.id.clone(), catalog));
                }
            }
        }
        for r in resources.iter().map(Borrow::<Resource>::borrow) {
            let body = || parse(&r.body);
            let step = |kind: &str, body: &Value, name_key: &str| Step {
                kind: kind.to_owned(),
                id: r.id.clone(),
                name: body
                    .get(name_key)
                    .and_then(Value::as_str)
                    .unwrap_or(&r.name)
                    .to_owned(),
                enabled: body.get("enabled").and_then(Value::as_bool),
            };
            match r.kind {
                // DestinationFilterV1 (`destinationId`, `title`, `enabled`).
                ResourceKind::DestinationFilter => {
                    let body = body();
                    if let Some(d) = body.get("destinationId").and_then(Value::as_str) {
                        let step = step("destination_filter", &body, "title");
                        extras.target(d).filters.push(step);
                    }
                }
                // DestinationSubscription (`destinationId`, `settings`: the mapping).
                ResourceKind::DestinationSubscription => {
                    let body = body();
                    if let Some(d) = body.get("destinationId").and_then(Value::as_str) {
                        let fields = personal::mapped_fields_in_subscription(
                            &r.id,
                            body.get("settings").unwrap_or(&Value::Null),
                        );
                        let target = extras.target(d);
                        target.fields.extend(fields);
                        // A subscription of a Reverse ETL connection names its model.
                        if let Some(model) = body.get("modelId").and_then(Value::as_str) {
                            target.models.insert(model.to_owned());
                        }
                    }
                }
                // TransformationV1 (`sourceId`, `destinationMetadataId?`, `name`, `enabled`).
                ResourceKind::Transformation => {
                    let body = body();
                    let Some(source) = body.get("sourceId").and_then(Value::as_str) else {
                        continue;
                    };
                    let only = body.get("destinationMetadataId").and_then(Value::as_str);
                    let step = step("transformation", &body, "name");
                    for (d, catalog) in by_source.get(source).into_iter().flatten() {
                        if only.is_none() || only == catalog.as_deref() {
                            extras.target(d).transformations.push(step.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        extras
    }

    fn target(&mut self, destination: &str) -> &mut TargetExtras {
        self.by_target
            .entry((TargetKind::Destination, destination.to_owned()))
            .or_default()
    }

    /// Gives `flow` what stands on its way and its personal fields.
    pub fn apply(&self, flow: &mut Flow, patterns: &PersonalPatterns) {
        let Some(extra) = self
            .by_target
            .get(&(flow.target_kind, flow.target_id.clone()))
        else {
            return;
        };
        // A reverse ETL path: the destination syncs a model run on this flow's source.
        let models: Vec<&str> = extra
            .models
            .iter()
            .filter_map(|id| self.models.get(id))
            .filter(|(_, source)| source.as_deref().is_none_or(|s| s == flow.source_id))
            .map(|(name, _)| name.as_str())
            .collect();
        if !models.is_empty() {
            flow.via = format!("reverse ETL model {}", models.join(", "));
        }
        flow.filters = sorted(extra.filters.clone());
        flow.transformations = sorted(extra.transformations.clone());
        flow.personal_fields = personal::personal_fields(&extra.fields, patterns);
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn parse(body: &str) -> Value {
    // Canonical JSON from the collector or the store; a damaged body relates to nothing.
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn text(body: &Value, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_string)
}

fn strings(body: &Value, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether an `environment` label value names production.
pub fn is_production(environment: &str) -> bool {
    environment.eq_ignore_ascii_case("prod") || environment.eq_ignore_ascii_case("production")
}

impl FlowMap {
    /// The map of one snapshot's `resources`, personal fields matched by `patterns`.
    pub fn compute<R: Borrow<Resource>>(resources: &[R], patterns: &PersonalPatterns) -> FlowMap {
        let mut sources: BTreeMap<String, SourceNode> = BTreeMap::new();
        let mut targets: Vec<TargetNode> = Vec::new();
        let mut flows: Vec<Flow> = Vec::new();
        let mut plans_of: BTreeMap<String, Vec<NamedRef>> = BTreeMap::new();
        let mut functions: HashMap<&str, &str> = HashMap::new();
        for r in resources.iter().map(Borrow::<Resource>::borrow) {
            match r.kind {
                ResourceKind::Source => {
                    let body = parse(&r.body);
                    sources.insert(r.id.clone(), source_node(r, &body));
                }
                ResourceKind::TrackingPlan => {
                    for source in strings(&parse(&r.body), "sourceIds") {
                        plans_of.entry(source).or_default().push(NamedRef {
                            id: r.id.clone(),
                            name: r.name.clone(),
                        });
                    }
                }
                ResourceKind::Function => {
                    functions.insert(r.id.as_str(), r.name.as_str());
                }
                _ => {}
            }
        }
        for r in resources.iter().map(Borrow::<Resource>::borrow) {
            let (kind, body) = match r.kind {
                ResourceKind::Destination => (TargetKind::Destination, parse(&r.body)),
                ResourceKind::Warehouse => (TargetKind::Warehouse, parse(&r.body)),
                _ => continue,
            };
            let metadata = body.get("metadata").unwrap_or(&Value::Null);
            let function = text(metadata, "id")
                .filter(|_| kind == TargetKind::Destination)
                .and_then(|id| {
                    functions.get(id.as_str()).map(|name| NamedRef {
                        name: name.to_string(),
                        id,
                    })
                });
            let node = TargetNode {
                kind,
                id: r.id.clone(),
                name: r.name.clone(),
                enabled: body.get("enabled").and_then(Value::as_bool),
                catalog: text(metadata, "name"),
                function,
            };
            let fed_by = match kind {
                TargetKind::Destination => text(&body, "sourceId").into_iter().collect(),
                TargetKind::Warehouse => strings(&body, "connectedSourceIds"),
            };
            let via = match (&node.function, kind) {
                (Some(f), _) => format!("destination function {}", f.name),
                (None, k) => k.as_str().to_string(),
            };
            for source in fed_by {
                flows.push(Flow {
                    source_id: source,
                    target_kind: kind,
                    target_id: r.id.clone(),
                    via: via.clone(),
                    enabled: node.enabled.unwrap_or(true),
                    filters: Vec::new(),
                    transformations: Vec::new(),
                    personal_fields: Vec::new(),
                });
            }
            targets.push(node);
        }
        // A destination may name a source the snapshot does not hold.
        for f in &flows {
            sources
                .entry(f.source_id.clone())
                .or_insert_with(|| SourceNode {
                    id: f.source_id.clone(),
                    name: f.source_id.clone(),
                    enabled: None,
                    labels: Vec::new(),
                    environment: None,
                    production: false,
                    tracking_plans: Vec::new(),
                    present: false,
                });
        }
        for (id, mut plans) in plans_of {
            if let Some(s) = sources.get_mut(&id) {
                plans.sort();
                s.tracking_plans = plans;
            }
        }
        let extras = Extras::gather(resources);
        for f in &mut flows {
            let source_on = sources[&f.source_id].enabled.unwrap_or(true);
            f.enabled &= source_on;
            extras.apply(f, patterns);
        }
        let mut sources: Vec<SourceNode> = sources.into_values().collect();
        sources.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        targets.sort_by(|a, b| (a.kind, &a.name, &a.id).cmp(&(b.kind, &b.name, &b.id)));
        let source_pos: HashMap<&str, usize> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let target_pos: HashMap<(TargetKind, &str), usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.kind, t.id.as_str()), i))
            .collect();
        flows.sort_by_key(|f| {
            (
                source_pos[f.source_id.as_str()],
                target_pos[&(f.target_kind, f.target_id.as_str())],
            )
        });
        FlowMap {
            sources,
            targets,
            flows,
        }
    }

    /// The source with this id.
    pub fn source(&self, id: &str) -> Option<&SourceNode> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The destination or warehouse of this kind and id.
    pub fn target(&self, kind: TargetKind, id: &str) -> Option<&TargetNode> {
        self.targets.iter().find(|t| t.kind == kind && t.id == id)
    }

    /// The map narrowed to one source: it, its flows and their targets.
    pub fn of_source(&self, id: &str) -> FlowMap {
        self.narrowed(|f| f.source_id == id, |s| s.id == id, |_| false)
    }

    /// The map narrowed to one destination or warehouse: it, the flows into it and their
    /// sources.
    pub fn of_target(&self, kind: TargetKind, id: &str) -> FlowMap {
        self.narrowed(
            |f| f.target_kind == kind && f.target_id == id,
            |_| false,
            |t| t.kind == kind && t.id == id,
        )
    }

    fn narrowed(
        &self,
        keep: impl Fn(&Flow) -> bool,
        keep_source: impl Fn(&SourceNode) -> bool,
        keep_target: impl Fn(&TargetNode) -> bool,
    ) -> FlowMap {
        let flows: Vec<Flow> = self.flows.iter().filter(|f| keep(f)).cloned().collect();
        let sources = self
            .sources
            .iter()
            .filter(|s| keep_source(s) || flows.iter().any(|f| f.source_id == s.id))
            .cloned()
            .collect();
        let targets = self
            .targets
            .iter()
            .filter(|t| {
                keep_target(t)
                    || flows
                        .iter()
                        .any(|f| f.target_kind == t.kind && f.target_id == t.id)
            })
            .cloned()
            .collect();
        FlowMap {
            sources,
            targets,
            flows,
        }
    }

    /// How the map changed from `before` to `self`: flows added, removed, and those whose
    /// enabled state or personal fields changed.
    pub fn diff(&self, before: &FlowMap) -> FlowDelta {
        let old: BTreeMap<_, &Flow> = before.flows.iter().map(|f| (f.key(), f)).collect();
        let new: BTreeMap<_, &Flow> = self.flows.iter().map(|f| (f.key(), f)).collect();
        let mut delta = FlowDelta::default();
        for (key, f) in &new {
            match old.get(key) {
                None => delta.added.push((*f).clone()),
                Some(o) => {
                    let (was, now) = (o.personal_field_names(), f.personal_field_names());
                    let gained: Vec<String> =
                        now.iter().filter(|n| !was.contains(n)).cloned().collect();
                    let lost: Vec<String> =
                        was.iter().filter(|n| !now.contains(n)).cloned().collect();
                    if o.enabled != f.enabled || !gained.is_empty() || !lost.is_empty() {
                        delta.changed.push(FlowChange {
                            source_id: f.source_id.clone(),
                            target_kind: f.target_kind,
                            target_id: f.target_id.clone(),
                            enabled_before: o.enabled,
                            enabled_after: f.enabled,
                            personal_fields_added: gained,
                            personal_fields_removed: lost,
                        });
                    }
                }
            }
        }
        for (key, f) in &old {
            if !new.contains_key(key) {
                delta.removed.push((*f).clone());
            }
        }
        delta
    }
}

fn source_node(r: &Resource, body: &Value) -> SourceNode {
    let mut labels: Vec<SourceLabel> = body
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some(SourceLabel {
                key: text(l, "key")?,
                value: text(l, "value")?,
            })
        })
        .collect();
    labels.sort();
    let environment = labels
        .iter()
        .find(|l| l.key == "environment")
        .map(|l| l.value.clone());
    SourceNode {
        id: r.id.clone(),
        name: r.name.clone(),
        enabled: body.get("enabled").and_then(Value::as_bool),
        production: environment.as_deref().is_some_and(is_production),
        environment,
        labels,
        tracking_plans: Vec::new(),
        present: true,
    }
}

/// How a map changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowDelta {
    /// Flows of the later map only.
    pub added: Vec<Flow>,
    /// Flows of the earlier map only.
    pub removed: Vec<Flow>,
    /// Flows of both whose enabled state or personal fields changed.
    pub changed: Vec<FlowChange>,
}

impl FlowDelta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A flow present in both maps that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowChange {
    /// The source's id.
    pub source_id: String,
    /// What receives the data.
    pub target_kind: TargetKind,
    /// Its id.
    pub target_id: String,
    /// Whether data flowed before.
    pub enabled_before: bool,
    /// Whether it flows now.
    pub enabled_after: bool,
    /// Personal fields it receives now and did not before.
    pub personal_fields_added: Vec<String>,
    /// Personal fields it received before and no longer does.
    pub personal_fields_removed: Vec<String>,
}

impl FlowChange {
    /// `<source id>-><target id>`.
    pub fn edge_id(&self) -> String {
        format!("{}->{}", self.source_id, self.target_id)
    }
}

#[cfg(test)]
mod tests;
