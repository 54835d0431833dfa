//! The data-flow section as the templates read it: one row per flow with both ends' names, the
//! sources that send nowhere, and (HTML) the graph laid out by [`crate::flows::graph`].

use serde::Serialize;

use segwatch_core::flows::Step;

use super::DataFlows;
use crate::flows::graph::{self, Graph};

/// What the templates see as `flows`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FlowView {
    /// One per flow, in the map's order (by source, then destinations before warehouses).
    pub rows: Vec<FlowRow>,
    /// Names of the sources whose data goes nowhere.
    pub idle_sources: Vec<String>,
    /// The drawn graph.
    pub graph: Graph,
}

/// One flow, with what the table shows.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FlowRow {
    /// `<source id>-><target id>`.
    pub edge: String,
    pub source_id: String,
    pub source_name: String,
    pub environment: Option<String>,
    pub production: bool,
    pub target_kind: &'static str,
    pub target_id: String,
    pub target_name: String,
    pub via: String,
    pub enabled: bool,
    /// Filters and transformations on the way, `kind name` each; empty when none.
    pub steps: Vec<String>,
    /// The personal fields' names.
    pub personal: Vec<String>,
}

fn step(s: &Step) -> String {
    format!("{} {}", s.kind.replace('_', " "), s.name)
}

/// The view of `flows`.
pub(super) fn view(flows: &DataFlows) -> FlowView {
    let map = &flows.map;
    let rows = map
        .flows
        .iter()
        .map(|f| {
            let source = map.source(&f.source_id);
            let target = map.target(f.target_kind, &f.target_id);
            FlowRow {
                edge: f.edge_id(),
                source_id: f.source_id.clone(),
                source_name: source.map_or(f.source_id.clone(), |s| s.name.clone()),
                environment: source.and_then(|s| s.environment.clone()),
                production: source.is_some_and(|s| s.production),
                target_kind: f.target_kind.as_str(),
                target_id: f.target_id.clone(),
                target_name: target.map_or(f.target_id.clone(), |t| t.name.clone()),
                via: f.via.clone(),
                enabled: f.enabled,
                steps: f
                    .filters
                    .iter()
                    .chain(&f.transformations)
                    .map(step)
                    .collect(),
                personal: f.personal_field_names(),
            }
        })
        .collect();
    let idle_sources = map
        .sources
        .iter()
        .filter(|s| !map.flows.iter().any(|f| f.source_id == s.id))
        .map(|s| s.name.clone())
        .collect();
    FlowView {
        rows,
        idle_sources,
        graph: graph::layout(map),
    }
}
