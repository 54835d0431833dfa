//! Real workspaces: features a plan lacks, lists that shift while read, records segwatch cannot
//! understand. The binary against the simulator over HTTP.

use segwatch_simulator::{BadEventDefect, BadItemShape, Fault, FaultKind, Mutation, RaceAction};

use crate::util::{Run, TestWorkspace, free_port, stop_daemon};

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
        .code(1);
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

/// The users a poll's JSON line reports as `op` (added, removed, modified).
fn users_with(poll: &serde_json::Value, op: &str) -> Vec<String> {
    poll["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "user" && c["op"] == op)
        .map(|c| c["resource_id"].as_str().unwrap().to_string())
        .collect()
}

/// `segwatch poll --format json` with small pages, so the users span several.
fn poll_paged(ws: &TestWorkspace) -> (serde_json::Value, Vec<serde_json::Value>) {
    let run = ws
        .segwatch()
        .env("SEGWATCH_SEGMENT__PAGE_SIZE", "5")
        .args(["poll", "--format", "json"])
        .success();
    poll_json(&run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_during_a_read_removes_exactly_the_deleted_user_across_polls() {
    let ws = TestWorkspace::start().await;
    poll_paged(&ws);
    assert!(
        ws.sim.read(|s| s.users.len()) > 10,
        "users span several pages"
    );

    ws.sim.inject(Fault::race(RaceAction::Delete, "/users"));
    let (first, _) = poll_paged(&ws);
    let races = ws.sim.races();
    assert_eq!(races.len(), 1, "{races:?}");
    let deleted = races[0].id.clone();
    // The deletion shifted page 2 (one existing user unlisted) and moved `totalEntries`: the
    // list was read again, whole, and the one user it lacked was confirmed gone by id.
    assert_eq!(first["confirmation"]["checked"], 1, "{first}");
    assert_eq!(first["confirmation"]["found"], 0, "{first}");
    assert_eq!(first["confirmation"]["requests"], 1, "{first}");
    let (second, _) = poll_paged(&ws);
    let (third, _) = poll_paged(&ws);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for poll in [&first, &second, &third] {
        removed.extend(users_with(poll, "removed"));
        added.extend(users_with(poll, "added"));
    }
    assert_eq!(removed, [deleted], "only the deleted user is removed");
    assert!(added.is_empty(), "nobody comes back as added: {added:?}");
    // The confirmations are part of the poll's request count.
    let counted: i64 = ws
        .store()
        .connection()
        .query_row(
            "SELECT confirm_requests FROM snapshots WHERE id = ?1",
            [first["snapshot_id"].as_i64().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        counted as u64,
        first["confirmation"]["requests"].as_u64().unwrap()
    );
    assert!(first["api_requests"].as_i64().unwrap() > counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insertion_during_a_read_adds_the_new_user_once_and_removes_nobody() {
    let ws = TestWorkspace::start().await;
    poll_paged(&ws);
    ws.sim.inject(Fault::race(RaceAction::Insert, "/users"));
    let (first, _) = poll_paged(&ws);
    let inserted = ws.sim.races()[0].id.clone();
    let (second, _) = poll_paged(&ws);
    let mut added = users_with(&first, "added");
    added.extend(users_with(&second, "added"));
    assert_eq!(added, [inserted]);
    assert!(users_with(&first, "removed").is_empty());
    assert!(users_with(&second, "removed").is_empty());
}

fn quarantined(ws: &TestWorkspace) -> Vec<(String, String)> {
    let store = ws.store();
    let mut stmt = store
        .connection()
        .prepare("SELECT kind, reason FROM audit_quarantine ORDER BY snapshot_id, position")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_list_item_is_quarantined_and_every_later_poll_completes() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::NoId,
        })
        .on_path("/users"),
    );
    // Meanwhile a user leaves: while the list is incomplete, nobody is recorded as removed.
    let leaving = ws.sim.read(|s| s.users[3].id.clone());
    ws.sim
        .apply(Mutation::RemoveUser {
            user_id: leaving.clone(),
        })
        .unwrap();
    let run = ws.segwatch().args(["poll"]).success();
    let out = run.stdout();
    assert!(out.contains("user: incomplete: 1 of "), "{out}");
    assert!(
        out.contains("1 item the API sent could not be read"),
        "{out}"
    );
    assert_eq!(
        quarantined(&ws),
        [("user".to_string(), "has no `id`".to_string())]
    );
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, _) = poll_json(&run);
    assert!(users_with(&poll, "removed").is_empty(), "{poll}");
    // Read again, the same item is not stored twice.
    assert_eq!(quarantined(&ws).len(), 1);

    ws.sim.clear_faults();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, _) = poll_json(&run);
    assert_eq!(users_with(&poll, "removed"), [leaving]);
    ws.segwatch().args(["verify"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_audit_event_is_quarantined_and_the_trail_moves_on() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    ws.sim.inject(
        Fault::new(FaultKind::BadEvent {
            defect: BadEventDefect::TimestampNotADate,
        })
        .on_path("/audit-events"),
    );
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    ws.sim
        .apply(Mutation::RotateWriteKey {
            source_id: source.clone(),
        })
        .unwrap();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, alerts) = poll_json(&run);
    assert_eq!(poll["quarantined"].as_array().unwrap().len(), 1, "{poll}");
    // The good event still names who rotated the key.
    let change = &poll["changes"].as_array().unwrap()[0];
    assert_eq!(change["resource_id"], source.as_str());
    assert!(change["actor"].is_string(), "{change}");
    assert!(
        alerts
            .iter()
            .any(|a| a["rule_id"] == "source-write-key-rotated")
    );
    let q = quarantined(&ws);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, "audit_event");
    assert!(q[0].1.contains("not ISO-8601"), "{q:?}");
    for _ in 0..2 {
        ws.segwatch().args(["poll"]).success();
    }
    assert_eq!(quarantined(&ws).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_mostly_unreadable_fails_the_poll_as_a_new_api_shape() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::All,
        })
        .on_path("/users"),
    );
    let run = ws.segwatch().args(["poll"]).code(1);
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr()
            .contains("the API's response has changed shape"),
        "{}",
        run.stderr()
    );
    // Nothing was recorded as removed: the failed poll is no base.
    ws.sim.clear_faults();
    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let (poll, _) = poll_json(&run);
    assert!(poll["changes"].as_array().unwrap().is_empty(), "{poll}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_names_kinds_not_read_and_quarantined_items_in_healthz_and_metrics() {
    let ws = TestWorkspace::start().await;
    lack(&ws, &["/groups"], 403);
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::NotObject,
        })
        .on_path("/users"),
    );
    let port = free_port();
    let child = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", "* * * * * *")
        .env("SEGWATCH_HEALTH__LISTEN", &format!("127.0.0.1:{port}"))
        .args(["run"])
        .spawn();
    ws.wait_for_db("a poll completed", |s| {
        s.snapshots(1, 5).is_ok_and(|l| {
            l.iter()
                .any(|s| s.status == segwatch_store::SnapshotStatus::Complete)
        })
    })
    .await;
    let get = |path: &str| reqwest::get(format!("http://127.0.0.1:{port}{path}"));
    let healthz = get("/healthz").await.unwrap();
    // A feature the plan lacks is not ill health: everything else is watched.
    assert_eq!(healthz.status(), 200);
    let body: serde_json::Value = healthz.json().await.unwrap();
    let w = &body["workspaces"][0];
    assert!(
        w["kinds_not_read"]["group"]
            .as_str()
            .unwrap()
            .starts_with("unavailable (HTTP 403): GET /groups: HTTP 403"),
        "{body}"
    );
    assert!(
        w["kinds_not_read"]["user"]
            .as_str()
            .unwrap()
            .starts_with("incomplete: 1 of "),
        "{body}"
    );
    assert_eq!(w["quarantined_items"], 1, "{body}");
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for line in [
        "segwatch_kind_not_read{workspace=\"default\",kind=\"group\",status=\"unavailable\"} 1",
        "segwatch_kind_not_read{workspace=\"default\",kind=\"user\",status=\"incomplete\"} 1",
        "segwatch_quarantined_items{workspace=\"default\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    let _ = stop_daemon(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_repeats_one_user_and_skips_another_is_read_again_and_raises_nothing() {
    let ws = TestWorkspace::start().await;
    poll_paged(&ws);
    // Once: the list is read again, agrees with itself, and nothing is missing or changed.
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::Repeat,
        })
        .on_path("/users")
        .skip(1)
        .times(1),
    );
    let (poll, alerts) = poll_paged(&ws);
    assert!(poll["changes"].as_array().unwrap().is_empty(), "{poll}");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(
        poll["kind_status"].as_object().unwrap().is_empty(),
        "{poll}"
    );
    assert_eq!(
        poll["confirmation"]["checked"], 0,
        "the second read had everyone"
    );

    // On every page: both reads disagree, so the users are incomplete and nobody is removed,
    // even though each read misses some owners.
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::Repeat,
        })
        .on_path("/users"),
    );
    for _ in 0..2 {
        let (poll, alerts) = poll_paged(&ws);
        assert!(poll["changes"].as_array().unwrap().is_empty(), "{poll}");
        assert!(alerts.is_empty(), "{alerts:?}");
        let reason = poll["kind_status"]["user"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("GET /users disagreed with itself on two reads"),
            "{reason}"
        );
    }
    ws.sim.clear_faults();
    let (poll, alerts) = poll_paged(&ws);
    assert!(poll["changes"].as_array().unwrap().is_empty(), "{poll}");
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_missing_from_an_agreeing_list_is_found_by_id_and_kept() {
    let ws = TestWorkspace::start().await;
    poll_paged(&ws);
    let users = ws.sim.read(|s| s.users.len());
    let pages = users.div_ceil(5) as u32;
    // The last page silently lacks its last user: the pages agree, so only a look-up by id can
    // tell a user who left from one the list missed.
    ws.sim.inject(
        Fault::new(FaultKind::BadItem {
            shape: BadItemShape::Drop,
        })
        .on_path("/users")
        .skip(pages - 1)
        .times(1),
    );
    let (poll, alerts) = poll_paged(&ws);
    assert_eq!(poll["confirmation"]["checked"], 1, "{poll}");
    assert_eq!(poll["confirmation"]["found"], 1, "{poll}");
    assert!(poll["changes"].as_array().unwrap().is_empty(), "{poll}");
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deletions_during_one_read_remove_exactly_those_two() {
    let ws = TestWorkspace::start().await;
    poll_paged(&ws);
    // Pages 2 and 3 each shift under a deletion: the read disagrees with itself, the second
    // read agrees, and exactly the two deleted users are removed, nobody else, then or later.
    ws.sim
        .inject(Fault::race(RaceAction::Delete, "/users").times(2));
    let (first, _) = poll_paged(&ws);
    let mut deleted: Vec<String> = ws.sim.races().into_iter().map(|r| r.id).collect();
    deleted.sort();
    assert_eq!(deleted.len(), 2);
    let (second, _) = poll_paged(&ws);
    let mut removed = users_with(&first, "removed");
    removed.extend(users_with(&second, "removed"));
    removed.sort();
    assert_eq!(removed, deleted);
    assert!(users_with(&first, "added").is_empty(), "{first}");
    assert!(users_with(&second, "added").is_empty(), "{second}");
    assert!(
        first["kind_status"].as_object().unwrap().is_empty(),
        "{first}"
    );
}
