//! The data-flow map laid out for the report's inline SVG: sources in a column on the left,
//! destinations and warehouses on the right, one curve per flow. Only numbers and plain text
//! are computed here; the report's template writes the elements, escaping every text.
//!
//! Every node carries its key (`source:<id>`, `destination:<id>`, `warehouse:<id>`) and every
//! edge its id (`<source id>-><target id>`), which the template writes as `data-node` and
//! `data-edge` attributes.

use std::collections::BTreeSet;

use serde::Serialize;

use segwatch_core::flows::{FlowMap, TargetKind};

use super::render::source_key;

/// Canvas width, and the width of a node.
const WIDTH: u32 = 960;
const NODE_WIDTH: u32 = 300;
/// Height of a node with two lines of text, and of one with a third (personal fields).
const NODE_HEIGHT: u32 = 44;
const TALL_NODE_HEIGHT: u32 = 60;
const GAP: u32 = 12;
const MARGIN: u32 = 16;
/// Characters of a name shown in a node (the whole name is its tooltip).
const LABEL_CHARS: usize = 38;

/// A laid-out graph.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Canvas width.
    pub width: u32,
    /// Canvas height.
    pub height: u32,
    /// Sources first, then destinations and warehouses, in the map's order.
    pub nodes: Vec<GraphNode>,
    /// One per flow.
    pub edges: Vec<GraphEdge>,
}

/// A box of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// `source:<id>`, `destination:<id>` or `warehouse:<id>`.
    pub key: String,
    /// `source`, `destination` or `warehouse`.
    pub kind: &'static str,
    /// Top-left corner and size.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The whole name (tooltip).
    pub title: String,
    /// The name as shown (cut to fit, with `…`).
    pub label: String,
    /// A second line: environment and state, or kind and catalog.
    pub sub: String,
    /// Personal fields received (targets only), comma-separated; empty when none.
    pub personal: String,
    /// A production source.
    pub production: bool,
    /// Enabled (an unknown state counts as enabled).
    pub enabled: bool,
}

/// A curve of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphEdge {
    /// `<source id>-><target id>`.
    pub id: String,
    /// The source node's key.
    pub from: String,
    /// The target node's key.
    pub to: String,
    /// The SVG path (`M … C …`).
    pub path: String,
    /// Whether data flows.
    pub enabled: bool,
    /// Personal fields it carries, comma-separated; empty when none.
    pub personal: String,
    /// Its source is a production source.
    pub production: bool,
}

fn cut(name: &str) -> String {
    if name.chars().count() <= LABEL_CHARS {
        return name.to_string();
    }
    let mut s: String = name.chars().take(LABEL_CHARS - 1).collect();
    s.push('…');
    s
}

/// Lays `map` out.
pub fn layout(map: &FlowMap) -> Graph {
    let mut nodes = Vec::with_capacity(map.sources.len() + map.targets.len());
    let mut y = MARGIN;
    for s in &map.sources {
        let mut sub: Vec<String> = Vec::new();
        if let Some(env) = &s.environment {
            sub.push(env.clone());
        }
        if s.production {
            sub.push("production".into());
        }
        if s.enabled == Some(false) {
            sub.push("disabled".into());
        }
        if sub.is_empty() {
            sub.push("source".into());
        }
        nodes.push(GraphNode {
            key: source_key(&s.id),
            kind: "source",
            x: MARGIN,
            y,
            width: NODE_WIDTH,
            height: NODE_HEIGHT,
            title: format!("{} ({})", s.name, s.id),
            label: cut(&s.name),
            sub: sub.join(" · "),
            personal: String::new(),
            production: s.production,
            enabled: s.enabled != Some(false),
        });
        y += NODE_HEIGHT + GAP;
    }
    let left_bottom = y;
    let mut y = MARGIN;
    let target_x = WIDTH - MARGIN - NODE_WIDTH;
    for t in &map.targets {
        let fields: BTreeSet<String> = map
            .flows
            .iter()
            .filter(|f| f.target_kind == t.kind && f.target_id == t.id)
            .flat_map(|f| f.personal_field_names())
            .collect();
        let personal = fields.into_iter().collect::<Vec<_>>().join(", ");
        let height = if personal.is_empty() {
            NODE_HEIGHT
        } else {
            TALL_NODE_HEIGHT
        };
        let mut sub = vec![t.kind.as_str().to_string()];
        if let Some(c) = &t.catalog {
            sub.push(c.clone());
        }
        if t.enabled == Some(false) {
            sub.push("disabled".into());
        }
        nodes.push(GraphNode {
            key: t.key(),
            kind: t.kind.as_str(),
            x: target_x,
            y,
            width: NODE_WIDTH,
            height,
            title: format!("{} ({})", t.name, t.id),
            label: cut(&t.name),
            sub: sub.join(" · "),
            personal,
            production: false,
            enabled: t.enabled != Some(false),
        });
        y += height + GAP;
    }
    let right_bottom = y;
    // Centre the shorter column against the taller one.
    let shift = left_bottom.abs_diff(right_bottom) / 2;
    for n in &mut nodes {
        let shorter = if left_bottom < right_bottom {
            n.kind == "source"
        } else {
            n.kind != "source"
        };
        if shorter {
            n.y += shift;
        }
    }
    let height = left_bottom.max(right_bottom).max(MARGIN * 2 + NODE_HEIGHT) + MARGIN - GAP;
    let centres: std::collections::HashMap<&str, (u32, u32)> = nodes
        .iter()
        .map(|n| (n.key.as_str(), (n.x, n.y + n.height / 2)))
        .collect();
    let centre = |key: &str| centres.get(key).copied();
    let mut edges = Vec::with_capacity(map.flows.len());
    for f in &map.flows {
        let from = source_key(&f.source_id);
        let to = format!(
            "{}:{}",
            match f.target_kind {
                TargetKind::Destination => "destination",
                TargetKind::Warehouse => "warehouse",
            },
            f.target_id
        );
        let (Some((sx, sy)), Some((tx, ty))) = (centre(&from), centre(&to)) else {
            continue;
        };
        let (x1, x2) = (sx + NODE_WIDTH, tx);
        let mid = (x1 + x2) / 2;
        edges.push(GraphEdge {
            id: f.edge_id(),
            path: format!("M {x1} {sy} C {mid} {sy}, {mid} {ty}, {x2} {ty}"),
            from,
            to,
            enabled: f.enabled,
            personal: f.personal_field_names().join(", "),
            production: map.source(&f.source_id).is_some_and(|s| s.production),
        });
    }
    Graph {
        width: WIDTH,
        height,
        nodes,
        edges,
    }
}
