//! `segwatch access` after a poll of the simulated workspace: what a user can reach and who can
//! reach a source, as JSON and CSV, equal to an independent computation from the simulator's
//! own state (permissions, group members and invites, source labels); unknown arguments exit 1.

use std::collections::BTreeSet;

use segwatch_simulator::{Permission, WorkspaceState};
use serde_json::Value;

use crate::util::TestWorkspace;

/// `(user_email, user_id, role, resource_kind, resource_id, resource_name, via, group_id,
/// label_filter, invite)`, as `segwatch access` writes a grant.
pub(crate) type Row = [String; 10];

/// Every grant of the simulated workspace, computed from its state without segwatch's code
/// (the generator grants roles on the workspace and on sources only, so only their names are
/// looked up):
/// a permission on a source (or any non-workspace resource) is one row on it; on the
/// workspace without labels, one row on the workspace; with labels (on the resource or the
/// permission), one row per source carrying any of them.
pub(crate) fn expected_grants(s: &WorkspaceState) -> BTreeSet<Row> {
    let mut out = BTreeSet::new();
    let name_of = |kind: &str, id: &str| -> String {
        let found = match kind {
            "WORKSPACE" => (s.workspace.id == id).then(|| s.workspace.name.clone()),
            "SOURCE" => s
                .sources
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.name.clone()),
            _ => None,
        };
        found.unwrap_or_else(|| id.to_string())
    };
    let mut add =
        |email: &str, user_id: &str, via: &str, group_id: &str, invite: bool, p: &Permission| {
            for r in &p.resources {
                let kind = serde_json::to_value(r.kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string();
                let mut labels: Vec<String> = r
                    .labels
                    .iter()
                    .chain(p.labels.iter())
                    .flatten()
                    .map(|l| format!("{}={}", l.key, l.value))
                    .collect();
                labels.sort();
                labels.dedup();
                let row = |kind: &str, id: &str, name: String, filter: String| -> Row {
                    [
                        email.to_string(),
                        user_id.to_string(),
                        p.role_name.clone(),
                        kind.to_string(),
                        id.to_string(),
                        name,
                        via.to_string(),
                        group_id.to_string(),
                        filter,
                        if invite { "yes" } else { "no" }.to_string(),
                    ]
                };
                if kind == "WORKSPACE" && !labels.is_empty() {
                    for source in &s.sources {
                        let carried = source
                            .labels
                            .iter()
                            .any(|l| labels.contains(&format!("{}={}", l.key, l.value)));
                        if carried {
                            out.insert(row(
                                "SOURCE",
                                &source.id,
                                source.name.clone(),
                                labels.join(","),
                            ));
                        }
                    }
                } else {
                    out.insert(row(&kind, &r.id, name_of(&kind, &r.id), String::new()));
                }
            }
        };
    for u in &s.users {
        for p in &u.permissions {
            add(&u.email, &u.id, "direct", "", false, p);
        }
    }
    for g in &s.groups {
        let via = format!("group {}", g.name);
        for p in &g.permissions {
            for member in &g.members {
                let u = s
                    .users
                    .iter()
                    .find(|u| &u.id == member)
                    .expect("a member is a user");
                add(&u.email, &u.id, &via, &g.id, false, p);
            }
            for email in &g.invites {
                add(email, "", &via, &g.id, true, p);
            }
        }
    }
    out
}

/// The roles of the simulated workspace that, granted on the whole workspace, reach its sources.
fn reaches_sources(role: &str) -> bool {
    matches!(
        role,
        "Workspace Owner" | "Source Admin" | "Source Read-only"
    )
}

fn json_rows(grants: &Value) -> BTreeSet<Row> {
    grants
        .as_array()
        .expect("grants is an array")
        .iter()
        .map(|g| {
            let text = |k: &str| {
                g[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {g}"))
                    .to_string()
            };
            [
                text("user_email"),
                text("user_id"),
                text("role"),
                text("resource_kind"),
                text("resource_id"),
                text("resource_name"),
                text("via"),
                text("group_id"),
                text("label_filter"),
                if g["invite"].as_bool().unwrap() {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ]
        })
        .collect()
}

/// The CSV's rows (header checked), without the `role_id` column.
fn csv_rows(text: &str) -> BTreeSet<Row> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "user_email",
            "user_id",
            "role",
            "role_id",
            "resource_kind",
            "resource_id",
            "resource_name",
            "via",
            "group_id",
            "label_filter",
            "invite"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let f = |i: usize| r[i].to_string();
            [f(0), f(1), f(2), f(4), f(5), f(6), f(7), f(8), f(9), f(10)]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_by_user_and_by_source_equals_the_simulated_workspaces_grants() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let state = ws.sim.read(|s| s.clone());
    let all = expected_grants(&state);

    // The user with the most grants, and the source reached by the most grants.
    let user = state
        .users
        .iter()
        .max_by_key(|u| all.iter().filter(|r| r[1] == u.id).count())
        .unwrap();
    let source = state
        .sources
        .iter()
        .max_by_key(|s| all.iter().filter(|r| r[4] == s.id).count())
        .unwrap();
    let of_user: BTreeSet<Row> = all.iter().filter(|r| r[0] == user.email).cloned().collect();
    assert!(
        of_user.len() >= 2,
        "a user with several grants: {of_user:?}"
    );
    assert!(
        of_user.iter().any(|r| r[6] == "direct"),
        "the simulated workspace gives every user a direct grant"
    );
    let workspace_wide = |r: &Row| r[3] == "WORKSPACE" && reaches_sources(&r[2]);
    let reaching: BTreeSet<Row> = all
        .iter()
        .filter(|r| (r[3] == "SOURCE" && r[4] == source.id) || workspace_wide(r))
        .cloned()
        .collect();
    assert!(reaching.iter().any(|r| r[3] == "SOURCE"), "{reaching:?}");
    assert!(
        reaching.iter().any(workspace_wide),
        "an owner reaches every source"
    );

    // --user, JSON and CSV.
    let json = ws
        .segwatch()
        .args(["access", "--user", &user.email, "--format", "json"])
        .success()
        .json();
    assert_eq!(json_rows(&json["grants"]), of_user);
    let snapshot_id = json["snapshot_id"].as_i64().unwrap();
    let observed_at = json["observed_at"].as_str().unwrap().to_string();
    assert_eq!(snapshot_id, 1);
    let csv = ws
        .segwatch()
        .args(["access", "--user", &user.email, "--format", "csv"])
        .success()
        .stdout();
    assert_eq!(csv_rows(&csv), of_user);
    // By id, the same grants.
    let by_id = ws
        .segwatch()
        .args(["access", "--user", &user.id, "--format", "json"])
        .success()
        .json();
    assert_eq!(json_rows(&by_id["grants"]), of_user);

    // --resource by name and by id, JSON and CSV.
    let json = ws
        .segwatch()
        .args(["access", "--resource", &source.name, "--format", "json"])
        .success()
        .json();
    assert_eq!(json_rows(&json["grants"]), reaching);
    let csv = ws
        .segwatch()
        .args(["access", "--resource", &source.id, "--format", "csv"])
        .success()
        .stdout();
    assert_eq!(csv_rows(&csv), reaching);

    // A pending group invite is a subject too.
    if let Some(invitee) = state.groups.iter().flat_map(|g| &g.invites).next() {
        let json = ws
            .segwatch()
            .args(["access", "--user", invitee, "--format", "json"])
            .success()
            .json();
        let expected: BTreeSet<Row> = all.iter().filter(|r| &r[0] == invitee).cloned().collect();
        assert_eq!(json_rows(&json["grants"]), expected);
        assert!(expected.iter().all(|r| r[9] == "yes" && r[1].is_empty()));
    }

    // The table: a count line and a header; at the snapshot's own time.
    ws.segwatch()
        .args(["access", "--user", &user.email, "--at", &observed_at])
        .success()
        .stdout_contains(&[
            &format!(
                "{} grants at {observed_at} (snapshot 1, observed at {observed_at})",
                of_user.len()
            ),
            "user ",
            " invite",
        ]);

    // Unknown at that time: exit 1, naming the flag.
    ws.segwatch()
        .args(["access", "--user", "nobody@nowhere.io", "--at", &observed_at])
        .code(1)
        .stderr_has_line(&format!(
            "error: --user: no user or pending invite with id or email `nobody@nowhere.io` at {observed_at} (snapshot 1, observed at {observed_at})"
        ));
    ws.segwatch()
        .args(["access", "--resource", "No Such Source", "--at", &observed_at])
        .code(1)
        .stderr_has_line(&format!(
            "error: --resource: no workspace, source, warehouse or function with id or name `No Such Source` at {observed_at} (snapshot 1, observed at {observed_at})"
        ));
}
