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

/// Packages a crate must not name as a direct (normal) dependency, though one below it may.
const NOT_DIRECT: &[(&str, &[&str], &str)] = &[
    (
        "segwatch",
        &["rusqlite"],
        "every SQL statement lives in segwatch-store",
    ),
    (
        "segwatch-sinks",
        &["rusqlite"],
        "every SQL statement lives in segwatch-store",
    ),
];

/// Runs cargo in the workspace without touching the network (everything was fetched to build
/// this test) and returns its standard output.
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .args(["--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Each workspace crate and the names of its direct normal dependencies (of the workspace and
/// from registries).
fn direct_deps() -> BTreeMap<String, BTreeSet<String>> {
    let meta: Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"])).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// The names of every package in the normal dependency tree of `package` on this platform
/// (what `cargo tree -p <package> -e normal` shows).
fn tree(package: &str) -> BTreeSet<String> {
    cargo(&[
        "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
    ])
    .lines()
    .filter_map(|line| line.split_whitespace().next())
    .map(str::to_owned)
    .collect()
}

#[test]
fn the_crate_graph_is_the_architecture_diagram() {
    let direct = direct_deps();
    let members: BTreeSet<String> = direct.keys().cloned().collect();
    let described: BTreeSet<String> = ALLOWED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        members, described,
        "every workspace crate has its place in ALLOWED and in ARCHITECTURE.md"
    );
    for (name, allowed) in ALLOWED {
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let extra: Vec<_> = direct[*name]
            .intersection(&members)
            .filter(|dep| !allowed.contains(*dep))
            .collect();
        assert!(
            extra.is_empty(),
            "{name} depends on {extra:?}, which the architecture forbids (allowed: {allowed:?})"
        );
    }
    for (name, forbidden, why) in NOT_DIRECT {
        for package in *forbidden {
            assert!(
                !direct[*name].contains(*package),
                "{name} depends on {package} directly: {why}"
            );
        }
    }
    for (name, forbidden, why) in FORBIDDEN {
        let tree = tree(name);
        assert!(tree.len() > 1, "cargo tree listed nothing for {name}");
        for package in *forbidden {
            assert!(
                !tree.contains(*package),
                "{name} has {package} in its dependency tree (see `cargo tree -p {name} -e normal \
                 -i {package}`): {why}"
            );
        }
    }
}
