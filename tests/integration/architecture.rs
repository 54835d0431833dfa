//! The crate graph is the architecture (ARCHITECTURE.md, "Crates"): this test reads it with
//! `cargo metadata` and fails when a crate gains a dependency the diagram forbids.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies; tests
/// may use more through `[dev-dependencies]`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("segwatch-core", &[]),
    ("segwatch-api", &["segwatch-core"]),
    ("segwatch-store", &["segwatch-core"]),
    ("segwatch-sinks", &["segwatch-core", "segwatch-store"]),
    ("segwatch-simulator", &[]),
    (
        "segwatch-testkit",
        &[
            "segwatch-core",
            "segwatch-api",
            "segwatch-store",
            "segwatch-sinks",
            "segwatch-simulator",
        ],
    ),
    (
        "segwatch",
        &[
            "segwatch-core",
            "segwatch-api",
            "segwatch-store",
            "segwatch-sinks",
            "segwatch-simulator",
        ],
    ),
];

/// Packages that must not be anywhere in a crate's normal dependency tree, and why.
const FORBIDDEN: &[(&str, &[&str], &str)] = &[
    (
        "segwatch-core",
        &["tokio", "reqwest", "hyper", "axum", "rusqlite", "lettre"],
        "the core is pure: no runtime, no HTTP, no database",
    ),
    (
        "segwatch-store",
        &["tokio", "reqwest", "hyper", "axum", "lettre"],
        "the store knows nothing of HTTP",
    ),
    (
        "segwatch-api",
        &["rusqlite", "lettre"],
        "the API clients know nothing of the store or the sinks",
    ),
    (
        "segwatch-simulator",
        &["rusqlite", "lettre"],
        "the simulator is a Segment workspace, nothing of segwatch's",
    ),
];

/// `cargo metadata`: package ids by name, and each package's normal dependencies.
struct Graph {
    names: BTreeMap<String, String>,
    normal: BTreeMap<String, Vec<String>>,
    members: BTreeSet<String>,
}

impl Graph {
    fn read() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let meta: Value = serde_json::from_slice(&output.stdout).unwrap();
        let names = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let members = meta["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_owned())
            .collect();
        let normal = meta["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| {
                        d["dep_kinds"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|k| k["kind"].is_null())
                    })
                    .map(|d| d["pkg"].as_str().unwrap().to_owned())
                    .collect();
                (node["id"].as_str().unwrap().to_owned(), deps)
            })
            .collect();
        Graph {
            names,
            normal,
            members,
        }
    }

    fn id_of(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.names[*id] == name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }

    /// Names of the direct normal dependencies of `name` that are workspace members.
    fn member_deps(&self, name: &str) -> BTreeSet<String> {
        self.normal[self.id_of(name)]
            .iter()
            .filter(|id| self.members.contains(*id))
            .map(|id| self.names[id].clone())
            .collect()
    }

    /// Every package in the normal dependency tree of `name`, by name, with the path that
    /// brings it in.
    fn tree(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        let start = self.id_of(name).to_owned();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stack = vec![(start, vec![name.to_owned()])];
        while let Some((id, path)) = stack.pop() {
            for dep in &self.normal[&id] {
                let dep_name = self.names[dep].clone();
                if seen.contains_key(&dep_name) {
                    continue;
                }
                let mut dep_path = path.clone();
                dep_path.push(dep_name.clone());
                seen.insert(dep_name, dep_path.clone());
                stack.push((dep.clone(), dep_path));
            }
        }
        seen
    }
}

#[test]
fn the_crate_graph_is_the_architecture_diagram() {
    let graph = Graph::read();
    let members: BTreeSet<String> = graph
        .members
        .iter()
        .map(|id| graph.names[id].clone())
        .collect();
    let described: BTreeSet<String> = ALLOWED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        members, described,
        "every workspace crate has its place in ALLOWED and in ARCHITECTURE.md"
    );
    for (name, allowed) in ALLOWED {
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let actual = graph.member_deps(name);
        let extra: Vec<_> = actual.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{name} depends on {extra:?}, which the architecture forbids (allowed: {allowed:?})"
        );
    }
    for (name, forbidden, why) in FORBIDDEN {
        let tree = graph.tree(name);
        for package in *forbidden {
            if let Some(path) = tree.get(*package) {
                panic!(
                    "{name} has {package} in its dependency tree ({}): {why}",
                    path.join(" → ")
                );
            }
        }
    }
}
