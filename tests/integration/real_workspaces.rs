//! Real workspaces: features a plan lacks, lists that shift while read, records segwatch cannot
//! understand. The binary against the simulator over HTTP.

use segwatch::simulator::{Fault, FaultKind, Mutation};

use crate::util::{Run, TestWorkspace};

/// The endpoints a Team-plan workspace lacks: user groups, Functions, Protocols, the audit trail.
const TEAM_PLAN_LACKS: [&str; 4] = ["/groups", "/functions", "/tracking-plans", "/audit-events"];

fn lack(ws: &TestWorkspace, paths: &[&str], status: u16) {
    for path in paths {
        ws.sim
            .inject(Fault::new(FaultKind::ClientError { status }).on_path(*path));
    }
}

/// The poll line and the alert lines of `poll --format json`.
fn poll_json(run: &Run) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut lines = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect::<Vec<_>>();
    let poll = lines.remove(0);
    assert_eq!(poll["type"], "poll", "{poll}");
    (poll, lines)
}

fn rule_ids(alerts: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = alerts
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn user_without_owner(ws: &TestWorkspace) -> String {
    ws.sim.read(|s| {
        let ws_id = s.workspace.id.clone();
        s.users
            .iter()
            .find(|u| {
                !u.permissions
                    .iter()
                    .any(|p| p.role_name == "Workspace Owner" && p.is_workspace_wide(&ws_id))
            })
            .unwrap()
            .id
            .clone()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_plan_workspace_polls_complete_and_alerts_on_users_and_sources() {
    let ws = TestWorkspace::start().await;
    lack(&ws, &TEAM_PLAN_LACKS, 403);

    let run = ws.segwatch().args(["poll"]).success();
    let out = run.stdout();
    assert!(out.contains("baseline of"), "{out}");
    for kind in ["group", "function", "tracking_plan", "audit_event"] {
        assert!(
            out.contains(&format!("{kind}: unavailable (HTTP 403)")),
            "{kind} not named:\n{out}"
        );
    }
    // Segment's own words come through, and nothing says the token is bad.
    assert!(out.contains("GET /groups: HTTP 403"), "{out}");
    assert!(!out.contains("Workspace Owner access"), "{out}");
    assert!(
        !run.stderr().contains("token was refused"),
        "{}",
        run.stderr()
    );

    let user = user_without_owner(&ws);
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    ws.sim
        .apply(Mutation::GrantRole {
            user_id: user,
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::RotateWriteKey { source_id: source })
        .unwrap();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, alerts) = poll_json(&run);
    let fired = rule_ids(&alerts);
    for rule in ["workspace-owner-granted", "source-write-key-rotated"] {
        assert!(
            fired.iter().any(|r| r == rule),
            "{rule} did not fire: {fired:?}"
        );
    }
    assert_eq!(poll["kind_status"]["group"]["status"], "unavailable");
    assert_eq!(poll["kind_status"]["group"]["http_status"], 403);
    // Unavailable from the first poll: simply absent, nothing carried.
    assert_eq!(poll["kind_status"]["group"]["carried"], false);
    assert!(poll["resource_counts"].get("group").is_none(), "{poll}");

    // `snapshots` names them too; check-connection says which features are missing and passes.
    let run = ws.segwatch().args(["snapshots"]).success();
    assert!(
        run.stdout().contains("group unavailable"),
        "{}",
        run.stdout()
    );
    let run = ws
        .segwatch()
        .env("SEGWATCH_PROFILES__SPACE_ID", "")
        .args(["check-connection"])
        .success();
    let out = run.stdout();
    assert!(out.contains("  user: readable"), "{out}");
    assert!(
        out.contains("  group: not available to this workspace (HTTP 403"),
        "{out}"
    );
    assert!(out.contains("  audit_event: not available"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stays_fatal_and_says_so() {
    let ws = TestWorkspace::start().await;
    let run = ws
        .segwatch()
        .env("SEGWATCH_SEGMENT__TOKEN", "not-the-token")
        .args(["poll"])
        .failure();
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr().contains("token was refused"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_lost_between_polls_removes_nothing_and_its_return_reports_what_changed() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let groups_before = ws.sim.read(|s| s.groups.len());
    assert!(groups_before > 0);

    // The plan loses user groups (404 this time, as a region without the endpoint answers);
    // meanwhile someone adds a member to a group.
    lack(&ws, &["/groups"], 404);
    let (group, user) = ws.sim.read(|s| {
        let g = &s.groups[0];
        let u = s.users.iter().find(|u| !g.members.contains(&u.id)).unwrap();
        (g.id.clone(), u.id.clone())
    });
    ws.sim
        .apply(Mutation::AddGroupMember {
            group_id: group.clone(),
            user_id: user.clone(),
        })
        .unwrap();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, alerts) = poll_json(&run);
    assert_eq!(poll["kind_status"]["group"]["status"], "unavailable");
    assert_eq!(poll["kind_status"]["group"]["http_status"], 404);
    assert_eq!(poll["kind_status"]["group"]["carried"], true);
    let group_changes: Vec<_> = poll["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "group")
        .collect();
    assert!(group_changes.is_empty(), "{group_changes:?}");
    assert!(
        alerts.iter().all(|a| a["resource_kind"] != "group"),
        "{alerts:?}"
    );
    // The groups are still there, as last seen.
    let stored: i64 = ws
        .store()
        .connection()
        .query_row(
            "SELECT count(*) FROM resource_versions WHERE kind = 'group' AND valid_to IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored as usize, groups_before);

    // The feature comes back: the change made meanwhile is reported, not absorbed.
    ws.sim.clear_faults();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, alerts) = poll_json(&run);
    assert!(
        poll["kind_status"].as_object().unwrap().is_empty(),
        "{poll}"
    );
    let group_changes: Vec<_> = poll["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "group")
        .collect();
    assert_eq!(group_changes.len(), 1, "{group_changes:?}");
    assert_eq!(group_changes[0]["op"], "modified");
    assert_eq!(group_changes[0]["resource_id"], group.as_str());
    let _ = alerts;
    ws.segwatch().args(["verify"]).success();
}
