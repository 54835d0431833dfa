//! `segwatch flows` as text (for a terminal: Segment's text escaped with
//! [`segwatch_core::terminal::Escaped`]) and as a Graphviz graph (DOT, every id and label a
//! quoted string).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use segwatch_core::flows::{Flow, FlowChange, FlowMap, SourceNode, Step, TargetNode};
use segwatch_core::terminal::Escaped;

use super::FlowsReport;

fn yes_no(b: bool) -> &'static str {
    if b { "enabled" } else { "disabled" }
}

fn enabled_text(e: Option<bool>) -> &'static str {
    match e {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "enabled: unknown",
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn steps(list: &[Step]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    list.iter()
        .map(|s| format!("{} ({})", Escaped(&s.name), Escaped(&s.id)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn target_of<'a>(map: &'a FlowMap, f: &Flow) -> Option<&'a TargetNode> {
    map.target(f.target_kind, &f.target_id)
}

/// The map as text: one block per source, one line per flow with what stands on its way and
/// the personal fields it carries, then the changes since `--since`.
pub fn text(report: &FlowsReport) -> String {
    let map = &report.map;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Data flows at {} (snapshot {}, observed at {}): {}, {}, {}",
        report.at,
        report.snapshot_id,
        report.observed_at,
        count(map.sources.len(), "source"),
        match map.targets.len() {
            1 => "1 destination or warehouse".to_string(),
            n => format!("{n} destinations and warehouses"),
        },
        count(map.flows.len(), "flow"),
    );
    for s in &map.sources {
        out.push('\n');
        source_line(&mut out, s);
        let flows: Vec<&Flow> = map.flows.iter().filter(|f| f.source_id == s.id).collect();
        if flows.is_empty() {
            out.push_str("  (its data goes nowhere)\n");
        }
        for f in flows {
            let (name, node_enabled) = target_of(map, f)
                .map(|t| (t.name.as_str(), t.enabled))
                .unwrap_or((f.target_id.as_str(), None));
            let _ = writeln!(
                out,
                "  -> {} {} ({}): {} via {}; flow {}",
                f.target_kind.as_str(),
                Escaped(name),
                Escaped(&f.target_id),
                enabled_text(node_enabled),
                Escaped(&f.via),
                yes_no(f.enabled),
            );
            let _ = writeln!(
                out,
                "     filters: {}; transformations: {}",
                steps(&f.filters),
                steps(&f.transformations)
            );
            let personal = if f.personal_fields.is_empty() {
                "none found".to_string()
            } else {
                f.personal_fields
                    .iter()
                    .map(|p| format!("{} ({})", Escaped(&p.field), Escaped(&p.path)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(out, "     personal fields: {personal}");
        }
    }
    if let Some(since) = &report.since {
        let d = &since.delta;
        let _ = writeln!(
            out,
            "\nChanges since {} (snapshot {}, observed at {}): {} added, {} removed, {} changed",
            since.at,
            since.snapshot_id,
            since.observed_at,
            d.added.len(),
            d.removed.len(),
            d.changed.len()
        );
        for f in &d.added {
            let _ = writeln!(out, "  + {}", edge_text(f));
        }
        for f in &d.removed {
            let _ = writeln!(out, "  - {}", edge_text(f));
        }
        for c in &d.changed {
            let _ = writeln!(out, "  ~ {}", change_text(c));
        }
    }
    out
}

fn source_line(out: &mut String, s: &SourceNode) {
    let labels = if s.labels.is_empty() {
        "no labels".to_string()
    } else {
        s.labels
            .iter()
            .map(|l| format!("{}={}", Escaped(&l.key), Escaped(&l.value)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        out,
        "source {} ({}): {}; {}",
        Escaped(&s.name),
        Escaped(&s.id),
        enabled_text(s.enabled),
        labels
    );
    if s.production {
        out.push_str("; PRODUCTION");
    }
    if !s.present {
        out.push_str("; not in the snapshot");
    }
    out.push('\n');
    if !s.tracking_plans.is_empty() {
        let plans: Vec<String> = s
            .tracking_plans
            .iter()
            .map(|p| Escaped(&p.name).to_string())
            .collect();
        let _ = writeln!(out, "  tracking plans: {}", plans.join(", "));
    }
}

fn edge_text(f: &Flow) -> String {
    let mut line = format!(
        "{} -> {} {} via {}, {}",
        Escaped(&f.source_id),
        f.target_kind.as_str(),
        Escaped(&f.target_id),
        Escaped(&f.via),
        yes_no(f.enabled)
    );
    let names = f.personal_field_names();
    if !names.is_empty() {
        let names: Vec<String> = names.iter().map(|n| Escaped(n).to_string()).collect();
        let _ = write!(line, "; personal fields: {}", names.join(", "));
    }
    line
}

fn change_text(c: &FlowChange) -> String {
    let mut parts = Vec::new();
    if c.enabled_before != c.enabled_after {
        parts.push(format!(
            "{} -> {}",
            yes_no(c.enabled_before),
            yes_no(c.enabled_after)
        ));
    }
    let list = |v: &[String]| {
        v.iter()
            .map(|n| Escaped(n).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.personal_fields_added.is_empty() {
        parts.push(format!("now receives {}", list(&c.personal_fields_added)));
    }
    if !c.personal_fields_removed.is_empty() {
        parts.push(format!(
            "no longer receives {}",
            list(&c.personal_fields_removed)
        ));
    }
    format!(
        "{} -> {} {}: {}",
        Escaped(&c.source_id),
        c.target_kind.as_str(),
        Escaped(&c.target_id),
        parts.join("; ")
    )
}

/// A DOT quoted string: control and bidi characters escaped as text first (as for a
/// terminal), then backslashes and quotes escaped, so that nothing can close the string.
pub fn dot_quote(text: &str) -> String {
    let safe = segwatch_core::terminal::escape(text);
    let mut out = String::with_capacity(safe.len() + 2);
    out.push('"');
    for c in safe.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A DOT quoted string of several lines (`\n` between them), each escaped as by [`dot_quote`].
fn dot_lines(lines: &[&str]) -> String {
    let quoted: Vec<String> = lines
        .iter()
        .map(|l| {
            let q = dot_quote(l);
            q[1..q.len() - 1].to_string()
        })
        .collect();
    format!("\"{}\"", quoted.join("\\n"))
}

/// The node id of a source in DOT and in the report's SVG: `source:<id>`.
pub fn source_key(id: &str) -> String {
    format!("source:{id}")
}

/// The map as a Graphviz digraph: sources on the left (production ones filled red), then
/// destinations (boxes) and warehouses (cylinders); a disabled flow is dashed, its label lists
/// the personal fields. With `--since`, added flows are green and removed ones dotted grey.
pub fn dot(report: &FlowsReport) -> String {
    let map = &report.map;
    let mut out = String::from(
        "digraph flows {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for s in &map.sources {
        let key = source_key(&s.id);
        let style = if s.production {
            ", style=filled, fillcolor=\"#fde2e2\", color=\"#b91c1c\""
        } else {
            ""
        };
        let label = match &s.environment {
            Some(env) => dot_lines(&[&s.name, env]),
            None => dot_quote(&s.name),
        };
        let _ = writeln!(out, "  {} [label={label}{style}];", dot_quote(&key));
        declared.insert(key);
    }
    for t in &map.targets {
        let shape = match t.kind {
            segwatch_core::flows::TargetKind::Destination => "box",
            segwatch_core::flows::TargetKind::Warehouse => "cylinder",
        };
        let style = if t.enabled == Some(false) {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} [label={}, shape={shape}{style}];",
            dot_quote(&t.key()),
            dot_quote(&t.name)
        );
        declared.insert(t.key());
    }
    let added: BTreeSet<String> = report
        .since
        .iter()
        .flat_map(|s| s.delta.added.iter().map(Flow::edge_id))
        .collect();
    for f in &map.flows {
        let mut attrs = vec![format!(
            "label={}",
            dot_quote(&f.personal_field_names().join(", "))
        )];
        if !f.enabled {
            attrs.push("style=dashed".into());
        }
        if added.contains(&f.edge_id()) {
            attrs.push("color=\"#15803d\", penwidth=2".into());
        }
        let _ = writeln!(
            out,
            "  {} -> {} [{}];",
            dot_quote(&source_key(&f.source_id)),
            dot_quote(&format!("{}:{}", f.target_kind.as_str(), f.target_id)),
            attrs.join(", ")
        );
    }
    if let Some(since) = &report.since {
        for f in &since.delta.removed {
            let from = source_key(&f.source_id);
            let to = format!("{}:{}", f.target_kind.as_str(), f.target_id);
            for (key, label) in [(&from, &f.source_id), (&to, &f.target_id)] {
                if declared.insert(key.clone()) {
                    let _ = writeln!(
                        out,
                        "  {} [label={}, style=dotted];",
                        dot_quote(key),
                        dot_quote(label)
                    );
                }
            }
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"removed\", style=dotted, color=\"#6b7280\"];",
                dot_quote(&from),
                dot_quote(&to)
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use segwatch_core::flows::{FlowMap, PersonalPatterns};
    use segwatch_core::model::{Resource, ResourceKind};
    use serde_json::json;

    use super::super::FlowsSince;
    use super::*;

    /// A source and a destination whose names, labels and mapped field carry terminal escapes,
    /// bidi overrides and DOT syntax.
    fn hostile() -> FlowsReport {
        let evil = "Web\u{1b}[31m\u{202e}\"] -> x [label=\"";
        let resources = [
            Resource::new(
                ResourceKind::Source,
                "s1".into(),
                evil.into(),
                json!({"id": "s1", "labels": [{"key": "environment", "value": "prod"},
                                              {"key": "team\n", "value": "x"}]}),
            ),
            Resource::new(
                ResourceKind::Destination,
                "d1".into(),
                evil.into(),
                json!({"id": "d1", "sourceId": "s1",
                       "settings": {"traitMapping": {"email\u{1b}[2J": "x"}}}),
            ),
        ];
        let map = FlowMap::compute(&resources, &PersonalPatterns::default());
        FlowsReport {
            at: "2026-01-01T00:00:00.000Z".into(),
            snapshot_id: 2,
            observed_at: "2026-01-01T00:00:00.000Z".parse().unwrap(),
            personal_field_patterns: vec![],
            since: Some(FlowsSince {
                at: "2025-12-01T00:00:00.000Z".into(),
                snapshot_id: 1,
                observed_at: "2025-12-01T00:00:00.000Z".parse().unwrap(),
                delta: map.diff(&FlowMap::default()),
            }),
            map,
        }
    }

    #[test]
    fn text_escapes_segments_text() {
        let text = text(&hostile());
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("source Web\\u{1b}[31m\\u{202e}"), "{text}");
        assert!(text.contains("personal fields: email\\u{1b}[2J"), "{text}");
        assert!(
            text.contains("environment=prod, team\\n=x; PRODUCTION"),
            "{text}"
        );
        assert!(
            text.contains("  + s1 -> destination d1 via destination, enabled"),
            "{text}"
        );
    }

    #[test]
    fn dot_keeps_every_name_inside_its_quotes() {
        let dot = dot(&hostile());
        assert!(!dot.contains('\u{1b}'), "{dot}");
        // One statement per line, and each line's quotes balance once escapes are removed.
        for line in dot.lines() {
            let unescaped = line.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
        }
        assert_eq!(
            dot.matches(" -> ").count() - dot.matches("-> x").count(),
            1,
            "{dot}"
        );
        assert!(
            dot.contains("color=\"#15803d\""),
            "an added flow is green: {dot}"
        );
    }

    #[test]
    fn dot_strings_cannot_be_closed_or_carry_controls() {
        assert_eq!(dot_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(dot_quote("x\n}\u{1b}"), "\"x\\\\n}\\\\u{1b}\"");
        assert_eq!(dot_quote("Prod → Müller"), "\"Prod → Müller\"");
        assert_eq!(dot_lines(&["a\"", "prod"]), "\"a\\\"\\nprod\"");
    }
}
