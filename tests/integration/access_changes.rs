//! Access changes end to end: the simulator adds a label to a source, adds a user to a group
//! and takes a role off a group; the next `segwatch poll` reports exactly the grants gained and
//! lost (computed here from the simulator's state, not by segwatch's code), each with the
//! resource change that caused it and who made it; they are stored, sealed, and the access
//! rules fire.

use std::collections::BTreeSet;

use segwatch_simulator::Mutation;
use serde_json::Value;

use crate::access::{Row, expected_grants};
use crate::util::TestWorkspace;

/// A grant row as `expected_grants` writes it, from an access change in the poll's JSON.
fn row_of(change: &Value) -> Row {
    let g = &change["change"]["grant"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (via, group_id) = match g["via"]["type"].as_str() {
        Some("group") => (
            format!("group {}", s(&g["via"]["name"])),
            s(&g["via"]["id"]),
        ),
        _ => ("direct".to_string(), String::new()),
    };
    let filter: Vec<String> = g["label_filter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{}={}", s(&l[0]), s(&l[1])))
        .collect();
    [
        s(&g["user"]["email"]),
        s(&g["user"]["id"]),
        s(&g["role_name"]),
        s(&g["resource"]["kind"]),
        s(&g["resource"]["id"]),
        s(&g["resource"]["name"]),
        via,
        group_id,
        filter.join(","),
        if g["invite"].as_bool().unwrap() {
            "yes"
        } else {
            "no"
        }
        .to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_group_member_and_group_role_changes_are_reported_with_causes_and_rules_fire() {
    let ws = TestWorkspace::start().await;
    let baseline = ws.segwatch().args(["poll"]).success().stdout();
    assert!(
        !baseline.contains("effective access"),
        "a baseline reports no access changes:\n{baseline}"
    );
    let before = ws.sim.read(|s| s.clone());

    // 1. A label that a label-restricted role is restricted to, put on a source that lacks it.
    let (label_key, label_value) = before
        .users
        .iter()
        .flat_map(|u| &u.permissions)
        .chain(before.groups.iter().flat_map(|g| &g.permissions))
        .flat_map(|p| {
            p.labels
                .iter()
                .flatten()
                .chain(p.resources.iter().flat_map(|r| r.labels.iter().flatten()))
        })
        .map(|l| (l.key.clone(), l.value.clone()))
        .next()
        .expect("the simulated workspace has a label-restricted permission");
    let source = before
        .sources
        .iter()
        .find(|s| s.label(&label_key) != Some(label_value.as_str()))
        .expect("a source without that label");
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: source.id.clone(),
            key: label_key.clone(),
            value: label_value.clone(),
        })
        .unwrap();
    // 2. A user added to a group that holds permissions.
    let group = before
        .groups
        .iter()
        .find(|g| !g.permissions.is_empty())
        .expect("a group with permissions");
    let newcomer = before
        .users
        .iter()
        .find(|u| !group.members.contains(&u.id))
        .expect("a user outside the group");
    ws.sim
        .apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: newcomer.id.clone(),
        })
        .unwrap();
    // 3. A role taken off another group with members.
    let other = before
        .groups
        .iter()
        .find(|g| g.id != group.id && !g.permissions.is_empty() && !g.members.is_empty())
        .expect("another group with permissions and members");
    let revoked_role = other.permissions[0].role_name.clone();
    ws.sim
        .apply(Mutation::RevokeGroupRole {
            group_id: other.id.clone(),
            role_name: revoked_role.clone(),
        })
        .unwrap();
    let after = ws.sim.read(|s| s.clone());

    // Expected: the set difference of the grants computed from the simulator's own state.
    let (was, is) = (expected_grants(&before), expected_grants(&after));
    let gained: BTreeSet<Row> = is.difference(&was).cloned().collect();
    let lost: BTreeSet<Row> = was.difference(&is).cloned().collect();
    assert!(
        !gained.is_empty() && !lost.is_empty(),
        "{gained:?} {lost:?}"
    );

    // The starter pack, with the rule on access lost through a group turned on.
    let rules = ws.dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for entry in std::fs::read_dir(segwatch_testkit::STARTER_RULES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = if path.ends_with("access_changes.yaml") {
                assert!(text.contains("  enabled: false\n"));
                text.replace("  enabled: false\n", "")
            } else {
                text
            };
            std::fs::write(rules.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let segwatch = || {
        ws.segwatch()
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
    };
    let run = segwatch().args(["poll", "--format", "json"]).success();
    let stdout = run.stdout();
    let poll: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let changes = poll["access_changes"].as_array().expect("access_changes");
    let of = |op: &str| -> BTreeSet<Row> {
        changes
            .iter()
            .filter(|c| c["change"]["change"] == op)
            .map(row_of)
            .collect()
    };
    assert_eq!(of("added"), gained, "grants gained");
    assert_eq!(of("removed"), lost, "grants lost");
    assert_eq!(changes.len(), gained.len() + lost.len(), "no duplicates");

    // Each with its cause, and who made it (the simulator's audit trail names an actor).
    for c in changes {
        let grant = &c["change"]["grant"];
        let cause = &c["change"]["cause"];
        let expected = if grant["resource"]["id"] == source.id.as_str()
            && !grant["label_filter"].as_array().unwrap().is_empty()
            && cause["kind"] == "source"
        {
            ("source", source.id.as_str())
        } else if grant["via"]["id"] == group.id.as_str() {
            ("group", group.id.as_str())
        } else if grant["via"]["id"] == other.id.as_str() {
            ("group", other.id.as_str())
        } else {
            panic!("an access change nothing here caused: {c}");
        };
        assert_eq!(
            (
                cause["kind"].as_str().unwrap(),
                cause["id"].as_str().unwrap()
            ),
            expected,
            "{c}"
        );
        assert!(
            c["attribution"]["actor"].is_string(),
            "the audit trail names who caused {c}"
        );
    }
    assert!(
        changes
            .iter()
            .any(|c| c["change"]["cause"]["kind"] == "source"),
        "the label reached someone"
    );

    // The rules fired on them: a label grant, and a grant lost through the group.
    let alerts: Vec<Value> = stdout
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fired = |rule: &str| {
        alerts
            .iter()
            .filter(|a| a["rule_id"] == rule && a["resource_kind"] == "access")
            .count()
    };
    // One alert per rule, resource reached and cause: a label reaching twelve people is one
    // alert counting them.
    let groups = |filter: &dyn Fn(&Value) -> bool| -> BTreeSet<(String, String)> {
        changes
            .iter()
            .filter(|c| filter(c))
            .map(|c| {
                (
                    c["change"]["grant"]["resource"]["id"].to_string(),
                    c["change"]["cause"].to_string(),
                )
            })
            .collect()
    };
    let by_label = groups(&|c: &Value| {
        c["change"]["change"] == "added"
            && c["change"]["cause"]["kind"] == "source"
            && !c["change"]["grant"]["label_filter"]
                .as_array()
                .unwrap()
                .is_empty()
    });
    let lost_via_group = groups(&|c: &Value| {
        c["change"]["change"] == "removed" && c["change"]["grant"]["via"]["type"] == "group"
    });
    assert!(!by_label.is_empty() && !lost_via_group.is_empty());
    assert_eq!(fired("access-gained-through-label"), by_label.len());
    assert_eq!(fired("access-lost-through-group"), lost_via_group.len());
    let label_grants = changes
        .iter()
        .filter(|c| c["change"]["change"] == "added" && c["change"]["cause"]["kind"] == "source")
        .count();
    assert!(
        label_grants > 1,
        "the label reaches several grants: {label_grants}"
    );
    let alert = alerts
        .iter()
        .find(|a| a["rule_id"] == "access-gained-through-label")
        .unwrap();
    assert_eq!(alert["explanation"]["grants"], label_grants, "{alert}");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("(and {} more grant", label_grants - 1)),
        "{alert}"
    );

    // Stored, with the change that caused them, and sealed.
    let db = rusqlite::Connection::open(ws.db()).unwrap();
    let stored: i64 = db
        .query_row("SELECT count(*) FROM audit_access_changes", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored as usize, changes.len());
    let unlinked: i64 = db
        .query_row(
            "SELECT count(*) FROM access_changes WHERE cause_change_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        unlinked, 0,
        "every access change names its cause's change row"
    );
    segwatch().args(["verify"]).success();
    db.execute(
        "UPDATE access_changes SET role_name = 'Workspace Owner' WHERE id = (SELECT min(id) FROM access_changes)",
        [],
    )
    .unwrap();
    let out = segwatch().args(["verify"]).code(1).stdout();
    assert!(
        out.contains("an access change it stored was edited"),
        "verify names the edited access change:\n{out}"
    );

    // Text output: one line per change, the cause and the actor.
    ws.sim
        .apply(Mutation::RemoveGroupMember {
            group_id: group.id.clone(),
            user_id: newcomer.id.clone(),
        })
        .unwrap();
    let text = segwatch().args(["poll"]).success().stdout();
    let n = group
        .permissions
        .iter()
        .map(|p| p.resources.len())
        .sum::<usize>();
    assert!(
        text.contains("effective access: "),
        "the poll lists access changes:\n{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("  - {}: ", newcomer.email)))
        .unwrap_or_else(|| panic!("a line for {}:\n{text}", newcomer.email));
    assert!(
        line.contains(&format!("via group {}", group.name))
            && line.contains(&format!("(group {} changed, by ", group.name)),
        "{line}"
    );
    assert!(n > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_poll_cannot_read_counts_as_last_seen_not_as_gone() {
    use segwatch_simulator::{Fault, FaultKind};

    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let before = ws.sim.read(|s| s.clone());
    // Groups become unreadable (a plan without them, a permission taken away) …
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 403 }).on_path("/groups"));
    // … while a source gets a label that group permissions are restricted to.
    let (key, value, source) = before
        .groups
        .iter()
        .filter(|g| !g.members.is_empty())
        .flat_map(|g| &g.permissions)
        .flat_map(|p| {
            p.labels
                .iter()
                .flatten()
                .chain(p.resources.iter().flat_map(|r| r.labels.iter().flatten()))
        })
        .find_map(|l| {
            before
                .sources
                .iter()
                .find(|s| s.label(&l.key) != Some(l.value.as_str()))
                .map(|s| (l.key.clone(), l.value.clone(), s.id.clone()))
        })
        .expect("a group restricted to a label some source lacks");
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: source,
            key,
            value,
        })
        .unwrap();
    let after = ws.sim.read(|s| s.clone());
    let (was, is) = (expected_grants(&before), expected_grants(&after));

    let run = ws.segwatch().args(["poll", "--format", "json"]).success();
    let poll: Value = serde_json::from_str(run.stdout().lines().next().unwrap()).unwrap();
    assert_eq!(
        poll["kind_status"]["group"]["status"], "unavailable",
        "{poll}"
    );
    let changes = poll["access_changes"].as_array().unwrap();
    let of = |op: &str| -> BTreeSet<Row> {
        changes
            .iter()
            .filter(|c| c["change"]["change"] == op)
            .map(row_of)
            .collect()
    };
    // The groups' grants are read as last seen: those the label gives are reported, none lost.
    assert_eq!(of("added"), is.difference(&was).cloned().collect());
    assert_eq!(of("removed"), was.difference(&is).cloned().collect());
    assert!(
        of("added").iter().any(|r| r[6].starts_with("group ")),
        "a group grant reached through the label: {changes:?}"
    );
}
