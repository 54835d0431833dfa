//! `segwatch flows` after polls of the simulated workspace: the map equals an independent
//! computation from the simulator's own state (destinations' `sourceId`, warehouses' connected
//! sources, enabled flags, `environment` labels); `--source` and `--destination` narrow it and
//! unknown ones exit 1 naming the flag; `--since` shows exactly the flows a mutation changed;
//! the DOT output is a well-formed graph; and the HTML report's graph, rendered by a real
//! headless browser, has the map's nodes and edges.

use std::collections::BTreeSet;

use segwatch_simulator::{Mutation, SimConfig, WorkspaceState};
use serde_json::{Value, json};

use crate::util::TestWorkspace;

/// `(source id, target kind, target id, via, enabled)` of a flow.
type Edge = (String, String, String, String, bool);

fn production(env: &str) -> bool {
    env.eq_ignore_ascii_case("prod") || env.eq_ignore_ascii_case("production")
}

/// Every flow of the simulated workspace, from its state: a destination is fed by its
/// `source_id`, a warehouse by each of its `connected_source_ids`; a flow is enabled when both
/// ends are; a destination whose catalog id is a function's id runs that function.
fn expected_edges(s: &WorkspaceState) -> BTreeSet<Edge> {
    let source_on = |id: &str| {
        s.sources
            .iter()
            .find(|x| x.id == id)
            .is_none_or(|x| x.enabled)
    };
    let mut out = BTreeSet::new();
    for d in &s.destinations {
        let via = s
            .functions
            .iter()
            .find(|f| d.metadata.get("id").and_then(Value::as_str) == Some(f.id.as_str()))
            .map_or("destination".to_string(), |f| {
                format!("destination function {}", f.display_name)
            });
        out.insert((
            d.source_id.clone(),
            "destination".into(),
            d.id.clone(),
            via,
            d.enabled && source_on(&d.source_id),
        ));
    }
    for w in &s.warehouses {
        for id in &w.connected_source_ids {
            out.insert((
                id.clone(),
                "warehouse".into(),
                w.id.clone(),
                "warehouse".into(),
                w.enabled && source_on(id),
            ));
        }
    }
    out
}

fn edge_of(f: &Value) -> Edge {
    let text = |k: &str| {
        f[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {f}"))
            .to_string()
    };
    (
        text("source_id"),
        text("target_kind"),
        text("target_id"),
        text("via"),
        f["enabled"].as_bool().unwrap(),
    )
}

fn edges(flows: &Value) -> BTreeSet<Edge> {
    flows
        .as_array()
        .expect("an array")
        .iter()
        .map(edge_of)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_equals_the_simulated_workspaces_flows_and_narrows_by_source_or_destination() {
    let ws = TestWorkspace::with(SimConfig {
        sources: 6,
        destinations: 10,
        warehouses: 3,
        ..SimConfig::default()
    })
    .await;
    // One source disabled and one destination disabled, so both rules of `enabled` show.
    let (source0, dest0) = ws
        .sim
        .read(|s| (s.sources[0].id.clone(), s.destinations[0].id.clone()));
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source0.clone(),
            enabled: false,
        })
        .unwrap();
    ws.sim
        .apply(Mutation::SetDestinationEnabled {
            destination_id: dest0.clone(),
            enabled: false,
        })
        .unwrap();
    ws.segwatch().args(["poll"]).success();
    let state = ws.sim.read(|s| s.clone());
    let all = expected_edges(&state);
    assert!(
        all.iter().any(|e| !e.4) && all.iter().any(|e| e.4),
        "{all:?}"
    );
    assert!(all.iter().any(|e| e.1 == "warehouse"));

    let json = ws
        .segwatch()
        .args(["flows", "--format", "json"])
        .success()
        .json();
    assert_eq!(edges(&json["flows"]), all);
    assert_eq!(json["snapshot_id"], 1);
    assert!(json["since"].is_null());
    let observed_at = json["observed_at"].as_str().unwrap().to_string();
    // Every source, with its labels, state and production flag as the simulator holds them.
    let sources: BTreeSet<(String, String, bool, bool)> = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
                s["enabled"].as_bool().unwrap(),
                s["production"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected_sources: BTreeSet<(String, String, bool, bool)> = state
        .sources
        .iter()
        .map(|s| {
            let prod = s
                .labels
                .iter()
                .any(|l| l.key == "environment" && production(&l.value));
            (s.id.clone(), s.name.clone(), s.enabled, prod)
        })
        .collect();
    assert_eq!(sources, expected_sources);
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(
        targets.len(),
        state.destinations.len() + state.warehouses.len()
    );
    // The simulated destinations' settings map no field: no personal field, nothing on the way.
    for f in json["flows"].as_array().unwrap() {
        assert_eq!(f["personal_fields"], json!([]), "{f}");
        assert_eq!(f["filters"], json!([]));
        assert_eq!(f["transformations"], json!([]));
    }
    assert!(
        json["personal_field_patterns"]
            .as_array()
            .unwrap()
            .contains(&json!("email"))
    );

    // --source, by name and by id: that source's flows only.
    let source = state
        .sources
        .iter()
        .max_by_key(|s| all.iter().filter(|e| e.0 == s.id).count())
        .unwrap();
    let of_source: BTreeSet<Edge> = all.iter().filter(|e| e.0 == source.id).cloned().collect();
    assert!(!of_source.is_empty());
    for key in [&source.name, &source.id] {
        let json = ws
            .segwatch()
            .args(["flows", "--source", key, "--format", "json"])
            .success()
            .json();
        assert_eq!(edges(&json["flows"]), of_source);
        assert_eq!(json["sources"].as_array().unwrap().len(), 1);
    }
    // --destination, a warehouse by id: every source it syncs.
    let warehouse = &state.warehouses[0];
    let into: BTreeSet<Edge> = all
        .iter()
        .filter(|e| e.2 == warehouse.id)
        .cloned()
        .collect();
    let json = ws
        .segwatch()
        .args(["flows", "--destination", &warehouse.id, "--format", "json"])
        .success()
        .json();
    assert_eq!(edges(&json["flows"]), into);
    assert_eq!(json["targets"].as_array().unwrap().len(), 1);
    let json = ws
        .segwatch()
        .args(["flows", "--destination", &dest0, "--format", "json"])
        .success()
        .json();
    assert_eq!(json["flows"].as_array().unwrap().len(), 1);
    assert_eq!(json["flows"][0]["enabled"], false);

    // Text: one block per source, Segment's text escaped.
    ws.segwatch()
        .args(["flows", "--source", &source.id, "--at", &observed_at])
        .success()
        .stdout_contains(&[
            &format!(
                "Data flows at {observed_at} (snapshot 1, observed at {observed_at}): 1 source, "
            ),
            &format!("source {} ({}): ", source.name, source.id),
            "     filters: none; transformations: none",
            "     personal fields: none found",
        ]);

    // Unknown names exit 1 naming the flag.
    ws.segwatch()
        .args(["flows", "--source", "nothing-here", "--at", &observed_at])
        .code(1)
        .stderr_has_line(&format!(
            "error: --source: no source with id or name `nothing-here` at {observed_at} (snapshot 1, observed at {observed_at})"
        ));
    ws.segwatch()
        .args(["flows", "--destination", "nowhere", "--at", &observed_at])
        .code(1)
        .stderr_has_line(&format!(
            "error: --destination: no destination or warehouse with id or name `nowhere` at {observed_at} (snapshot 1, observed at {observed_at})"
        ));
    ws.segwatch()
        .args(["flows", "--source", "a", "--destination", "b"])
        .code(2);

    // DOT: a digraph with one quoted node per source and target and one edge per flow.
    let dot = ws
        .segwatch()
        .args(["flows", "--format", "dot"])
        .success()
        .stdout();
    assert!(
        dot.starts_with("digraph flows {\n") && dot.ends_with("}\n"),
        "{dot}"
    );
    for s in &state.sources {
        assert!(
            dot.contains(&format!("  \"source:{}\" [label=", s.id)),
            "{dot}"
        );
    }
    for e in &all {
        let line = format!("  \"source:{}\" -> \"{}:{}\" [", e.0, e.1, e.2);
        assert_eq!(dot.matches(&line).count(), 1, "{line} in {dot}");
    }
    assert_eq!(dot.matches(" -> ").count(), all.len());
    if let Ok(out) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(dot.as_bytes())?;
            child.wait_with_output()
        })
    {
        // Graphviz is optional: when present, it must accept the graph.
        assert!(out.status.success(), "dot rejected:\n{dot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_shows_exactly_the_flows_a_mutation_changed() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let first = ws
        .segwatch()
        .args(["flows", "--format", "json"])
        .success()
        .json();
    let t1 = first["observed_at"].as_str().unwrap().to_string();
    let before = ws.sim.read(|s| s.clone());
    let source = before.sources[0].id.clone();
    let off = before
        .destinations
        .iter()
        .find(|d| d.enabled)
        .expect("an enabled destination")
        .clone();
    let mapped = before
        .destinations
        .iter()
        .find(|d| d.id != off.id)
        .expect("a second destination")
        .clone();
    ws.sim
        .apply(Mutation::AddDestination {
            source_id: source.clone(),
            name: "Fresh Webhook".into(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::SetDestinationEnabled {
            destination_id: off.id.clone(),
            enabled: false,
        })
        .unwrap();
    ws.sim
        .apply(Mutation::SetDestinationSetting {
            destination_id: mapped.id.clone(),
            key: "traitMapping".into(),
            value: json!({"email": "Email", "plan": "Plan"}),
        })
        .unwrap();
    ws.segwatch().args(["poll"]).success();
    let after = ws.sim.read(|s| s.clone());
    let added = after
        .destinations
        .iter()
        .find(|d| !before.destinations.iter().any(|b| b.id == d.id))
        .unwrap();

    let json = ws
        .segwatch()
        .args(["flows", "--since", &t1, "--format", "json"])
        .success()
        .json();
    assert_eq!(edges(&json["flows"]), expected_edges(&after));
    let since = &json["since"];
    assert_eq!(since["snapshot_id"], 1);
    assert_eq!(json["snapshot_id"], 2);
    let source_on = after.sources[0].enabled;
    assert_eq!(
        edges(&since["added"]),
        BTreeSet::from([(
            source.clone(),
            "destination".to_string(),
            added.id.clone(),
            "destination".to_string(),
            source_on
        )])
    );
    assert_eq!(since["removed"], json!([]));
    let off_source_on = after
        .sources
        .iter()
        .find(|s| s.id == off.source_id)
        .is_none_or(|s| s.enabled);
    let mapped_on = mapped.enabled
        && after
            .sources
            .iter()
            .find(|s| s.id == mapped.source_id)
            .is_none_or(|s| s.enabled);
    let mut changed = vec![json!({
        "source_id": mapped.source_id,
        "target_kind": "destination",
        "target_id": mapped.id,
        "enabled_before": mapped_on,
        "enabled_after": mapped_on,
        "personal_fields_added": ["email"],
        "personal_fields_removed": [],
    })];
    if off_source_on {
        changed.push(json!({
            "source_id": off.source_id,
            "target_kind": "destination",
            "target_id": off.id,
            "enabled_before": true,
            "enabled_after": false,
            "personal_fields_added": [],
            "personal_fields_removed": [],
        }));
    }
    let mut got = since["changed"].as_array().unwrap().clone();
    let key = |v: &Value| v["target_id"].as_str().unwrap().to_string();
    got.sort_by_key(key);
    changed.sort_by_key(key);
    assert_eq!(got, changed);
    // The mapped destination now shows the personal field it receives, and where it was read.
    let flow = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["target_id"] == mapped.id.as_str())
        .unwrap();
    assert_eq!(
        flow["personal_fields"],
        json!([{"field": "email", "pattern": "email", "path": "settings.traitMapping.email"}])
    );

    // Text and --source narrowing of the changes.
    ws.segwatch()
        .args(["flows", "--since", &t1, "--source", &source])
        .success()
        .stdout_contains(&[
            "Changes since ",
            &format!(
                "  + {source} -> destination {} via destination, {}",
                added.id,
                if source_on { "enabled" } else { "disabled" }
            ),
        ]);
    // A configured pattern list replaces the defaults.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("segwatch.toml");
    std::fs::write(&config, "[flows]\npersonal_field_patterns = [\"plan\"]\n").unwrap();
    let json = ws
        .segwatch()
        .args([
            "--config",
            config.to_str().unwrap(),
            "flows",
            "--destination",
        ])
        .args([&mapped.id, "--format", "json"])
        .success()
        .json();
    assert_eq!(json["flows"][0]["personal_fields"][0]["field"], "plan");
}
