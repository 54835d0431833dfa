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

/// The ids in a list of steps.
fn ids(steps: &Value) -> BTreeSet<String> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// For a flow into a destination, from the simulator's state: the filters on that destination,
/// the transformations of its source (all its destinations, or those of one catalog entry), and
/// the personal event fields its subscriptions map (`@path` directives reading an email, phone,
/// address, IP or first name: the ones the simulator generates that the default patterns
/// name).
fn expected_extras(
    s: &WorkspaceState,
    flow: &Value,
) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut out = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let Some(d) = s
        .destinations
        .iter()
        .find(|d| flow["target_kind"] == "destination" && flow["target_id"] == d.id.as_str())
    else {
        return out;
    };
    out.0 = d.filters.iter().map(|f| f.id.clone()).collect();
    let catalog = d.metadata.get("id").and_then(Value::as_str);
    out.1 = s
        .transformations
        .iter()
        .filter(|t| {
            t.source_id == d.source_id
                && t.destination_metadata_id
                    .as_deref()
                    .is_none_or(|m| Some(m) == catalog)
        })
        .map(|t| t.id.clone())
        .collect();
    for sub in &d.subscriptions {
        for v in sub.settings.values() {
            if let Some(path) = v.get("@path").and_then(Value::as_str) {
                let last = path.rsplit('.').next().unwrap();
                if ["email", "phone", "address", "ip", "first_name"].contains(&last) {
                    out.2.insert(path.trim_start_matches("$.").to_string());
                }
            }
        }
    }
    out
}

/// `(source id, target id, via, personal fields, valid from, valid to)` of a row of
/// `audit_data_flows`.
type ViewRow = (
    String,
    String,
    String,
    Option<BTreeSet<String>>,
    i64,
    Option<i64>,
);

/// The rows of `audit_data_flows` matching `filter`, read with plain SQL.
fn view_fields(ws: &TestWorkspace, filter: &str) -> Vec<ViewRow> {
    let db =
        rusqlite::Connection::open_with_flags(ws.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = db
        .prepare(&format!(
            "SELECT source_id, target_id, via, personal_fields, valid_from_snapshot_id,
                    valid_to_snapshot_id
             FROM audit_data_flows WHERE {filter} ORDER BY valid_from_snapshot_id"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        let fields: Option<String> = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            fields.map(|f| serde_json::from_str(&f).unwrap()),
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
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
    // What stands on each flow's way and the personal fields it carries, from the simulator's
    // filters, transformations and Actions subscriptions.
    let mut with_steps = 0;
    let mut with_personal = 0;
    for f in json["flows"].as_array().unwrap() {
        let (filters, transformations, personal) = expected_extras(&state, f);
        with_steps += usize::from(!filters.is_empty() || !transformations.is_empty());
        with_personal += usize::from(!personal.is_empty());
        assert_eq!(ids(&f["filters"]), filters, "{f}");
        assert_eq!(ids(&f["transformations"]), transformations, "{f}");
        let found: BTreeSet<String> = f["personal_fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(found, personal, "{f}");
    }
    assert!(
        with_steps > 0 && with_personal > 0,
        "the simulated workspace has both"
    );
    // The auditor view says the same ways and personal fields, in SQL, for every current flow.
    type Facts = (String, String, String, BTreeSet<String>);
    let in_view: BTreeSet<Facts> = view_fields(&ws, "1 = 1")
        .into_iter()
        .map(|(s, t, via, f, _, to)| {
            assert_eq!(to, None, "one poll: every row is current");
            (
                s,
                t,
                via,
                f.expect("fields are computed from the first poll on"),
            )
        })
        .collect();
    let expected: BTreeSet<Facts> = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let (_, _, personal) = expected_extras(&state, f);
            (
                f["source_id"].as_str().unwrap().to_string(),
                f["target_id"].as_str().unwrap().to_string(),
                f["via"].as_str().unwrap().to_string(),
                personal,
            )
        })
        .collect();
    assert_eq!(in_view, expected);
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
            "     filters: ",
            "; transformations: ",
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
    // (Besides those its Actions subscriptions map, if any.)
    assert!(
        flow["personal_fields"].as_array().unwrap().contains(
            &json!({"field": "email", "pattern": "email", "path": "settings.traitMapping.email"})
        ),
        "{flow}"
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
    ws.segwatch()
        .args(["flows", "--since", &t1, "--at", &t1])
        .code(1)
        .stderr_has_line(&format!("error: --since ({t1}) must be before --at ({t1})"));
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

    // The view keeps the mapped destination's fields over time: without `email` until the
    // mapping, with it after; and a poll with other patterns starts a row matched with them.
    ws.segwatch()
        .args(["--config", config.to_str().unwrap(), "poll"])
        .success();
    let rows = view_fields(&ws, &format!("target_id = '{}'", mapped.id));
    let fields: Vec<(Option<BTreeSet<String>>, i64, Option<i64>)> = rows
        .into_iter()
        .map(|(_, _, _, f, from, to)| (f, from, to))
        .collect();
    assert_eq!(fields.len(), 3, "{fields:?}");
    let (first, second, third) = (&fields[0], &fields[1], &fields[2]);
    assert_eq!((first.1, first.2), (1, Some(2)));
    assert!(!first.0.as_ref().unwrap().contains("email"), "{first:?}");
    assert_eq!((second.1, second.2), (2, Some(3)));
    assert!(second.0.as_ref().unwrap().contains("email"), "{second:?}");
    assert_eq!(
        third,
        &(Some(BTreeSet::from(["plan".to_string()])), 3, None),
        "matched with the configured patterns"
    );
}

/// A headless Chromium, if installed: `SEGWATCH_CHROMIUM`, else `chromium`,
/// `chromium-browser` or `google-chrome` on the `PATH`.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("SEGWATCH_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Measures the report's graph once the browser has laid it out: appended to a copy of the
/// report (the report itself has no script), it writes the SVG's size, each node's box and
/// each edge's length into `<pre id="measured">`, which `--dump-dom` then shows.
const MEASURE: &str = r#"<script>
(function () {
  var svg = document.getElementById('flow-graph');
  var box = svg.getBoundingClientRect();
  var out = {svg: [box.width, box.height], nodes: {}, edges: {}};
  svg.querySelectorAll('[data-node]').forEach(function (n) {
    var b = n.getBBox();
    out.nodes[n.getAttribute('data-node')] = [b.width, b.height];
  });
  svg.querySelectorAll('[data-edge]').forEach(function (e) {
    out.edges[e.getAttribute('data-edge')] = [e.getTotalLength()];
  });
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_reports_graph_renders_in_a_headless_browser_with_the_maps_nodes_and_edges() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SEGWATCH_REQUIRE_BROWSER").is_none(),
            "SEGWATCH_REQUIRE_BROWSER is set but no chromium was found (set SEGWATCH_CHROMIUM)"
        );
        eprintln!(
            "SKIPPED: the report's graph needs a headless Chromium (install `chromium`, or set SEGWATCH_CHROMIUM); .ci/run installs it and sets SEGWATCH_REQUIRE_BROWSER=1"
        );
        return;
    };
    let ws = TestWorkspace::with(SimConfig {
        sources: 5,
        destinations: 8,
        warehouses: 2,
        ..SimConfig::default()
    })
    .await;
    let dest = ws.sim.read(|s| s.destinations[1].id.clone());
    ws.sim
        .apply(Mutation::SetDestinationSetting {
            destination_id: dest.clone(),
            key: "traitMapping".into(),
            value: json!({"email": "Email"}),
        })
        .unwrap();
    ws.segwatch().args(["poll"]).success();
    let state = ws.sim.read(|s| s.clone());
    let report = ws.dir.path().join("report.html");
    ws.segwatch()
        .args(["report", "--format", "html", "--out"])
        .args([&report])
        .success();
    let html = std::fs::read_to_string(&report).unwrap();
    let page = ws.dir.path().join("measured.html");
    std::fs::write(&page, html.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium runs");
    // A browser that hangs fails the test in a minute rather than holding CI. Its output is
    // read meanwhile (a full pipe would stop it).
    let pid = out.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(out.wait_with_output()));
    let out = match finished.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("chromium did not render the report within 60 s");
        }
    };
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = scraper::Html::parse_document(&String::from_utf8_lossy(&out.stdout));
    let select = |css: &str| scraper::Selector::parse(css).unwrap();
    let attrs = |css: &str, attr: &str| -> BTreeSet<String> {
        dom.select(&select(css))
            .map(|e| e.value().attr(attr).unwrap().to_string())
            .collect()
    };

    // The rendered DOM holds exactly the map's nodes and edges.
    let mut nodes: BTreeSet<String> = state
        .sources
        .iter()
        .map(|s| format!("source:{}", s.id))
        .collect();
    nodes.extend(
        state
            .destinations
            .iter()
            .map(|d| format!("destination:{}", d.id)),
    );
    nodes.extend(
        state
            .warehouses
            .iter()
            .map(|w| format!("warehouse:{}", w.id)),
    );
    let edges: BTreeSet<String> = expected_edges(&state)
        .iter()
        .map(|e| format!("{}->{}", e.0, e.2))
        .collect();
    assert_eq!(attrs("#flow-graph [data-node]", "data-node"), nodes);
    assert_eq!(attrs("#flow-graph [data-edge]", "data-edge"), edges);
    // Production sources are highlighted; the mapped destination shows its personal field.
    for s in &state.sources {
        let prod = s
            .labels
            .iter()
            .any(|l| l.key == "environment" && production(&l.value));
        let node = dom
            .select(&select(&format!(r#"[data-node="source:{}"]"#, s.id)))
            .next()
            .unwrap();
        let classes = node.value().attr("class").unwrap();
        assert_eq!(classes.contains("prod"), prod, "{}: {classes}", s.id);
    }
    let mapped = dom
        .select(&select(&format!(
            r#"[data-node="destination:{dest}"] text.pii"#
        )))
        .next()
        .expect("the mapped destination lists its personal fields");
    let listed = mapped.text().collect::<String>();
    let fields: Vec<&str> = listed
        .strip_prefix("personal: ")
        .expect("a list of personal fields")
        .split(", ")
        .collect();
    assert!(fields.contains(&"email"), "{listed}");

    // And the browser laid it out: the SVG, every node and every edge have a size.
    let measured: Value = serde_json::from_str(
        &dom.select(&select("pre#measured"))
            .next()
            .expect("the measuring script ran")
            .text()
            .collect::<String>(),
    )
    .unwrap();
    let size = |v: &Value, i: usize| v[i].as_f64().unwrap();
    assert!(
        size(&measured["svg"], 0) > 100.0 && size(&measured["svg"], 1) > 40.0,
        "{measured}"
    );
    let measured_nodes = measured["nodes"].as_object().unwrap();
    assert_eq!(measured_nodes.len(), nodes.len());
    for (key, b) in measured_nodes {
        assert!(size(b, 0) > 0.0 && size(b, 1) > 0.0, "{key}: {b}");
    }
    let measured_edges = measured["edges"].as_object().unwrap();
    assert_eq!(measured_edges.len(), edges.len());
    for (key, b) in measured_edges {
        assert!(size(b, 0) > 0.0, "{key}: {b}");
    }
}
