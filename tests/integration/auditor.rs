//! Auditors' questions over a history of many polls, answered through the binary (`query`,
//! `history`, `changes`, `state --at`) and plain SQL on the `audit_*` views, and compared with
//! what the simulated workspace actually held at those times.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Mutation, WorkspaceState};
use serde_json::{Value, json};

use crate::util::{STARTER_RULES, TestWorkspace};

const OWNER: &str = "Workspace Owner";

/// One poll and what the simulated workspace held when it was observed.
struct Observation {
    snapshot_id: i64,
    /// The snapshot's observation time, as stored.
    observed_at: String,
    /// An instant after the poll and before the next mutation: the database's state at this
    /// instant is this poll's, and the simulator held `state` throughout.
    between: DateTime<Utc>,
    state: WorkspaceState,
}

/// The people and things the history is about.
struct Cast {
    /// Promoted to owner at poll 1, demoted at poll 3.
    alice: (String, String),
    /// Removed at poll 2, back with the same id (as an owner) at poll 3.
    bob: (String, String),
    /// Removed at poll 3; a new user with the same email (new id) at poll 4.
    carol: (String, String),
    /// Relabelled from one environment to another at poll 1.
    relabelled: (String, String, String),
    /// Loses its environment label at poll 2 and gets it back at poll 4.
    unlabelled: (String, String),
    /// Revoked at poll 2, invited again at poll 3.
    invite: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Six polls of the simulated workspace with the starter rules, mutations in between.
async fn build_history() -> (TestWorkspace, Vec<Observation>, Cast) {
    let ws = TestWorkspace::start().await;
    let rules = Arc::new(RuleSet::load(Path::new(STARTER_RULES)).unwrap());
    let cast = ws.sim.read(|st| {
        let owners: BTreeSet<&str> = st
            .users_with_workspace_role(OWNER)
            .map(|u| u.id.as_str())
            .collect();
        let mut others = st
            .users
            .iter()
            .filter(|u| !owners.contains(u.id.as_str()) && !u.permissions.is_empty());
        let mut pick = || {
            let u = others.next().expect("enough users who are not owners");
            (u.id.clone(), u.email.clone())
        };
        let (alice, bob, carol) = (pick(), pick(), pick());
        let mut labelled = st
            .sources
            .iter()
            .filter(|s| s.label("environment").is_some());
        let relabelled = labelled.next().expect("a labelled source");
        let unlabelled = labelled.next().expect("two labelled sources");
        let env = relabelled.label("environment").unwrap();
        let new_env = if env == "prod" { "staging" } else { "prod" };
        Cast {
            alice,
            bob,
            carol,
            relabelled: (relabelled.id.clone(), env.to_string(), new_env.to_string()),
            unlabelled: (
                unlabelled.id.clone(),
                unlabelled.label("environment").unwrap().to_string(),
            ),
            invite: st.invites[0].clone(),
        }
    });
    let bob_name = ws.sim.read(|st| st.user(&cast.bob.0).unwrap().name.clone());
    let steps: Vec<Vec<Mutation>> = vec![
        vec![],
        vec![
            Mutation::GrantRole {
                user_id: cast.alice.0.clone(),
                role_name: OWNER.into(),
            },
            Mutation::SetSourceLabel {
                source_id: cast.relabelled.0.clone(),
                key: "environment".into(),
                value: cast.relabelled.2.clone(),
            },
        ],
        vec![
            Mutation::RemoveUser {
                user_id: cast.bob.0.clone(),
            },
            Mutation::RemoveSourceLabel {
                source_id: cast.unlabelled.0.clone(),
                key: "environment".into(),
            },
            Mutation::RevokeInvite {
                email: cast.invite.clone(),
            },
        ],
        vec![
            Mutation::AddExistingUser {
                user_id: cast.bob.0.clone(),
                email: cast.bob.1.clone(),
                name: bob_name,
                role_name: OWNER.into(),
            },
            Mutation::RevokeRole {
                user_id: cast.alice.0.clone(),
                role_name: OWNER.into(),
            },
            Mutation::Invite {
                email: cast.invite.clone(),
                group_id: None,
            },
            Mutation::RemoveUser {
                user_id: cast.carol.0.clone(),
            },
        ],
        vec![
            Mutation::SetSourceLabel {
                source_id: cast.unlabelled.0.clone(),
                key: "environment".into(),
                value: cast.unlabelled.1.clone(),
            },
            Mutation::AddUser {
                email: cast.carol.1.clone(),
                name: String::new(),
                role_name: "Minimal Workspace Access".into(),
            },
        ],
        vec![],
    ];
    let mut observations = Vec::new();
    for mutations in steps {
        for m in mutations {
            ws.sim.apply(m).unwrap();
        }
        let outcome = ws.poll_rules(&rules).await.unwrap();
        // Observation times have millisecond resolution: step past this one.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let between = Utc::now();
        let observed_at: String = ws
            .store()
            .connection()
            .query_row(
                "SELECT finished_at FROM snapshots WHERE id = ?1",
                [outcome.snapshot_id.get()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(instant(&observed_at) < between);
        observations.push(Observation {
            snapshot_id: outcome.snapshot_id.get(),
            observed_at,
            between,
            state: ws.sim.read(|st| st.clone()),
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (ws, observations, cast)
}

/// What segwatch should have stored for each resource of the simulated workspace: the API's
/// JSON, redacted and canonical, by (kind, id).
fn expected_resources(st: &WorkspaceState) -> BTreeMap<(String, String), Value> {
    let policy = SecretPolicy::default();
    let mut out = BTreeMap::new();
    let mut put = |kind: ResourceKind, id: &str, mut value: Value| {
        policy.redact(kind, &mut value);
        let r = Resource::new(kind, id.to_string(), String::new(), value);
        out.insert(
            (kind.as_str().to_string(), id.to_string()),
            serde_json::from_str(&r.body).unwrap(),
        );
    };
    put(ResourceKind::Workspace, &st.workspace.id, to(&st.workspace));
    for r in &st.roles {
        put(ResourceKind::Role, &r.id, to(r));
    }
    for u in &st.users {
        put(ResourceKind::User, &u.id, to(u));
    }
    for g in &st.groups {
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| {
                let u = st.user(m).unwrap();
                json!({"id": u.id, "name": u.name, "email": u.email})
            })
            .collect();
        let mut invites = g.invites.clone();
        invites.sort();
        put(
            ResourceKind::Group,
            &g.id,
            json!({"id": g.id, "name": g.name, "memberCount": g.members.len(),
                   "permissions": to(&g.permissions), "members": members, "invites": invites}),
        );
    }
    for e in &st.invites {
        put(ResourceKind::Invite, e, json!({"email": e}));
    }
    for s in &st.sources {
        put(ResourceKind::Source, &s.id, to(s));
    }
    for l in &st.labels {
        put(
            ResourceKind::Label,
            &format!("{}:{}", l.key, l.value),
            to(l),
        );
    }
    for d in &st.destinations {
        put(ResourceKind::Destination, &d.id, to(d));
    }
    // Connections are sets, stored sorted.
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    for w in &st.warehouses {
        let mut body = to(w);
        body["connectedSourceIds"] = json!(sorted(&w.connected_source_ids));
        put(ResourceKind::Warehouse, &w.id, body);
    }
    for f in &st.functions {
        put(ResourceKind::Function, &f.id, to(f));
    }
    for t in &st.tracking_plans {
        let mut body = to(t);
        body["sourceIds"] = json!(sorted(&t.source_ids));
        put(ResourceKind::TrackingPlan, &t.id, body);
    }
    for f in st.destinations.iter().flat_map(|d| &d.filters) {
        put(ResourceKind::DestinationFilter, &f.id, to(f));
    }
    for s in st.destinations.iter().flat_map(|d| &d.subscriptions) {
        put(ResourceKind::DestinationSubscription, &s.id, to(s));
    }
    for s in &st.sources {
        let body = json!({"sourceId": s.id, "settings": to(&s.schema_settings)});
        put(ResourceKind::SourceSchemaSettings, &s.id, body);
    }
    for t in &st.transformations {
        put(ResourceKind::Transformation, &t.id, to(t));
    }
    for m in &st.reverse_etl_models {
        put(ResourceKind::ReverseEtlModel, &m.id, to(m));
    }
    out
}

fn to<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn owners(st: &WorkspaceState) -> Vec<String> {
    let mut emails: Vec<String> = st
        .users_with_workspace_role(OWNER)
        .map(|u| u.email.clone())
        .collect();
    emails.sort();
    emails
}

fn read_only(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn owners_from_view(conn: &Connection, at: &str) -> Vec<String> {
    conn.prepare(
        "SELECT DISTINCT email FROM audit_user_roles
         WHERE workspace = 'default' AND role_name = 'Workspace Owner' AND workspace_wide = 1
           AND valid_from_at <= ?1 AND (valid_to_at IS NULL OR valid_to_at > ?1)
         ORDER BY email",
    )
    .unwrap()
    .query_map([at], |r| r.get(0))
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// (kind, id, op) of every resource that differs between two states of the simulator.
fn expected_changes(
    before: &WorkspaceState,
    after: &WorkspaceState,
) -> BTreeSet<(String, String, String)> {
    let (a, b) = (expected_resources(before), expected_resources(after));
    let mut out = BTreeSet::new();
    for (key, body) in &b {
        match a.get(key) {
            None => out.insert((key.0.clone(), key.1.clone(), "added".into())),
            Some(old) if old != body => {
                out.insert((key.0.clone(), key.1.clone(), "modified".into()))
            }
            Some(_) => false,
        };
    }
    for key in a.keys().filter(|k| !b.contains_key(*k)) {
        out.insert((key.0.clone(), key.1.clone(), "removed".into()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_questions_match_what_the_workspace_held() {
    let (ws, obs, cast) = build_history().await;
    let conn = read_only(&ws.db());

    // The state at an instant between two polls, and at every observation time exactly, is
    // what the simulator held; one millisecond before an observation it is the previous poll's.
    for (k, o) in obs.iter().enumerate() {
        let expected = expected_resources(&o.state);
        for at in [rfc3339(o.between), o.observed_at.clone()] {
            let out = ws.segwatch().args(["state", "--at", &at]).success().json();
            assert_eq!(out["snapshot_id"], o.snapshot_id, "state at {at}");
            assert_eq!(out["observed_at"], o.observed_at.as_str());
            let got: BTreeMap<(String, String), Value> = out["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        (
                            r["kind"].as_str().unwrap().to_string(),
                            r["id"].as_str().unwrap().to_string(),
                        ),
                        r["body"].clone(),
                    )
                })
                .collect();
            assert_eq!(got.len(), expected.len(), "poll {k}");
            for (key, body) in &expected {
                assert_eq!(got.get(key), Some(body), "poll {k}: {key:?}");
            }
        }
        assert_eq!(
            owners_from_view(&conn, &rfc3339(o.between)),
            owners(&o.state),
            "owners between poll {k} and the next"
        );
        assert_eq!(owners_from_view(&conn, &o.observed_at), owners(&o.state));
        if k > 0 {
            let just_before = rfc3339(instant(&o.observed_at) - chrono::Duration::milliseconds(1));
            assert_eq!(
                owners_from_view(&conn, &just_before),
                owners(&obs[k - 1].state),
                "owners just before poll {k}"
            );
        }
    }
    // The owner set did change along the way, so the comparisons above mean something.
    assert!(owners(&obs[1].state).contains(&cast.alice.1));
    assert!(!owners(&obs[3].state).contains(&cast.alice.1));
    assert!(owners(&obs[3].state).contains(&cast.bob.1));

    // One kind, as CSV, with the instant given with an offset.
    let at = obs[2]
        .between
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let csv = ws
        .segwatch()
        .args([
            "state",
            "--at",
            &at.to_rfc3339(),
            "--kind",
            "user",
            "--format",
            "csv",
        ])
        .success()
        .stdout();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "snapshot_id",
            "observed_at",
            "kind",
            "id",
            "name",
            "version_id",
            "since_at",
            "content_hash",
            "body"
        ]
    );
    let users: BTreeSet<String> = reader
        .records()
        .map(|r| r.unwrap()[3].to_string())
        .collect();
    let expected: BTreeSet<String> = obs[2].state.users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(users, expected);
    assert!(!users.contains(&cast.bob.0), "bob was away at poll 2");

    // Before the first poll nothing was observed: an error, not an empty workspace.
    let first = &obs[0].observed_at;
    let before = rfc3339(instant(first) - chrono::Duration::milliseconds(1));
    ws.segwatch()
        .args(["state", "--at", &before])
        .code(1)
        .stderr_contains(&["nothing was observed at or before", first]);

    // The same owner question through `segwatch query`, as JSON and CSV.
    let t = rfc3339(obs[1].between);
    let sql = format!(
        "SELECT DISTINCT email FROM audit_user_roles WHERE role_name = 'Workspace Owner' \
         AND workspace_wide = 1 AND valid_from_at <= '{t}' AND (valid_to_at IS NULL OR valid_to_at > '{t}') ORDER BY email"
    );
    let json = ws
        .segwatch()
        .args(["query", &sql, "--format", "json"])
        .success()
        .json();
    let emails: Vec<String> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, owners(&obs[1].state));
    let csv = ws
        .segwatch()
        .args(["query", &sql, "--format", "csv"])
        .success()
        .stdout();
    assert_eq!(
        csv,
        format!("email\n{}\n", owners(&obs[1].state).join("\n"))
    );
    ws.segwatch()
        .args(["query", &sql])
        .success()
        .stdout_contains(&["email", &cast.alice.1, "rows)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_changes_and_alerts_tell_what_happened() {
    let (ws, obs, cast) = build_history().await;
    let at = |k: usize| obs[k].observed_at.as_str();

    // Bob: there at the baseline, removed at poll 2, back under the same id at poll 3.
    let h = ws
        .segwatch()
        .args(["history", "user", &cast.bob.1, "--format", "json"])
        .success()
        .json();
    assert_eq!(h["resource_id"], cast.bob.0.as_str());
    let steps: Vec<(String, String)> = h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["event"].as_str().unwrap().to_string(),
                s["at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let step = |e: &str, k: usize| (e.to_string(), at(k).to_string());
    assert_eq!(
        steps,
        [step("first_seen", 0), step("removed", 2), step("added", 3)]
    );
    assert_eq!(h["versions"][0]["valid_to_at"], at(2));
    assert_eq!(h["versions"][1]["valid_from_at"], at(3));
    assert_eq!(h["versions"][1]["valid_to_at"], Value::Null);
    let text = ws
        .segwatch()
        .args(["history", "user", &cast.bob.0])
        .success()
        .stdout();
    let events: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("    "))
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(events, ["first", "removed", "added"], "{text}");
    assert!(
        text.contains(&format!("{}  snapshot {}", at(2), obs[2].snapshot_id)),
        "{text}"
    );

    // Alice: granted Workspace Owner at poll 1, revoked at poll 3, field by field.
    let owner_role = obs[0].state.role_by_name(OWNER).unwrap().id.clone();
    let owner_path = format!("permissions[roleId={owner_role}]");
    let h = ws
        .segwatch()
        .args(["history", "user", &cast.alice.1, "--format", "json"])
        .success()
        .json();
    let modified: Vec<&Value> = h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["event"] == "modified")
        .collect();
    assert_eq!(modified.len(), 2, "{h}");
    assert_eq!(modified[0]["at"], at(1));
    assert_eq!(modified[1]["at"], at(3));
    let granted = &modified[0]["fields"][0];
    assert_eq!(granted["path"], owner_path.as_str());
    assert!(granted.get("old").is_none() && granted["new"]["roleName"] == OWNER);
    let revoked = &modified[1]["fields"][0];
    assert!(revoked["old"]["roleName"] == OWNER && revoked.get("new").is_none());

    // The relabelled source and the invite that went and came back.
    let h = ws
        .segwatch()
        .args(["history", "source", &cast.relabelled.0, "--format", "json"])
        .success()
        .json();
    assert_eq!(h["steps"][1]["at"], at(1));
    assert_eq!(
        h["steps"][1]["fields"],
        json!([{"path": "labels[key=environment].value", "old": cast.relabelled.1, "new": cast.relabelled.2}])
    );
    let h = ws
        .segwatch()
        .args(["history", "invite", &cast.invite, "--format", "json"])
        .success()
        .json();
    let events: Vec<&str> = h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["first_seen", "removed", "added"]);

    // Carol's email belonged to two accounts: the name is ambiguous, and both are listed.
    let new_carol = obs[4]
        .state
        .user_by_email(&cast.carol.1)
        .unwrap()
        .id
        .clone();
    ws.segwatch()
        .args(["history", "user", &cast.carol.1])
        .code(1)
        .stderr_contains(&[
            "2 users have been named",
            &cast.carol.0,
            &new_carol,
            "removed",
            "current",
        ]);

    // Changes in [poll 1, poll 3): exactly what differs between the simulator's states.
    let out = ws
        .segwatch()
        .args([
            "changes",
            "--since",
            at(1),
            "--until",
            at(3),
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(out["complete_polls"], 2);
    let got: BTreeSet<(i64, String, String, String)> = out["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["snapshot_id"].as_i64().unwrap(),
                c["kind"].as_str().unwrap().to_string(),
                c["resource_id"].as_str().unwrap().to_string(),
                c["op"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut expected = BTreeSet::new();
    for k in [1, 2] {
        for (kind, id, op) in expected_changes(&obs[k - 1].state, &obs[k].state) {
            expected.insert((obs[k].snapshot_id, kind, id, op));
        }
    }
    assert_eq!(got, expected);
    assert!(expected.contains(&(
        obs[2].snapshot_id,
        "user".into(),
        cast.bob.0.clone(),
        "removed".into()
    )));
    for c in out["changes"].as_array().unwrap() {
        let k = if c["snapshot_id"] == obs[1].snapshot_id {
            1
        } else {
            2
        };
        assert_eq!(c["observed_at"], at(k));
        assert_eq!(c["previous_observed_at"], at(k - 1));
    }
    // Only sources, over the whole history, as CSV; and the table.
    let csv = ws
        .segwatch()
        .args([
            "changes",
            "--since",
            "2000-01-01",
            "--kind",
            "source",
            "--format",
            "csv",
        ])
        .success()
        .stdout();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut expected_sources = 0;
    for k in 1..obs.len() {
        expected_sources += expected_changes(&obs[k - 1].state, &obs[k].state)
            .iter()
            .filter(|c| c.0 == "source")
            .count();
    }
    assert_eq!(rows.len(), expected_sources);
    assert!(rows.iter().all(|r| &r[4] == "source"));
    ws.segwatch()
        .args(["changes", "--since", at(1), "--until", at(2)])
        .success()
        .stdout_contains(&[
            "complete poll",
            &cast.alice.1,
            &format!("{owner_path}: (absent) →"),
        ]);

    // The same through SQL on the views.
    let conn = read_only(&ws.db());
    let (observed, old, new): (String, String, String) = conn
        .query_row(
            "SELECT observed_at, old_value, new_value FROM audit_change_fields
             WHERE workspace = 'default' AND kind = 'source' AND resource_id = ?1
               AND path = 'labels[key=environment].value'",
            [&cast.relabelled.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (observed.as_str(), old, new),
        (at(1), cast.relabelled.1.clone(), cast.relabelled.2.clone())
    );

    // The finding on the unlabelled source: opened at poll 2, resolved at poll 4.
    let (status, resolution, opened, resolved, age): (String, String, String, String, i64) = conn
        .query_row(
            "SELECT status, resolution, opened_at, resolved_at, age_s FROM audit_alerts
             WHERE workspace = 'default' AND rule_id = 'source-missing-environment-label'
               AND resource_id = ?1",
            [&cast.unlabelled.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (
            status.as_str(),
            resolution.as_str(),
            opened.as_str(),
            resolved.as_str()
        ),
        ("resolved", "compliant", at(2), at(4))
    );
    let open_for = (instant(at(4)) - instant(at(2))).num_milliseconds();
    assert!(
        (age * 1000 - open_for).abs() <= 500,
        "age_s {age} for {open_for} ms"
    );
    // The owner grants, as change alerts at the polls that observed them.
    let grants: Vec<(String, String)> = conn
        .prepare(
            "SELECT resource_name, opened_at FROM audit_alerts
             WHERE rule_id = 'workspace-owner-granted' ORDER BY opened_at",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        grants,
        [
            (cast.alice.1.clone(), at(1).to_string()),
            (cast.bob.1.clone(), at(3).to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditing_never_writes_and_rejects_bad_input_clearly() {
    let ws = TestWorkspace::start().await;
    ws.poll().await.unwrap();
    ws.sim
        .apply(Mutation::RotateWriteKey {
            source_id: ws.sim.read(|st| st.sources[0].id.clone()),
        })
        .unwrap();
    ws.poll().await.unwrap();
    let digest = || {
        let conn = read_only(&ws.db());
        let mut parts = Vec::new();
        for table in [
            "workspaces",
            "snapshots",
            "resource_versions",
            "changes",
            "alerts",
            "rule_state",
            "deliveries",
        ] {
            let row: (i64, i64) = conn
                .query_row(
                    &format!("SELECT count(*), coalesce(sum(rowid), 0) FROM {table}"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            parts.push(format!("{table}:{row:?}"));
        }
        let views: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'view'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        parts.push(format!("views:{views}"));
        parts.join(" ")
    };
    let before = digest();
    assert!(before.contains("changes:(1,"), "{before}");
    for sql in [
        "DELETE FROM changes",
        "UPDATE snapshots SET status = 'failed'",
        "DROP VIEW audit_changes",
        "INSERT INTO workspaces (name, created_at) VALUES ('x', 'y')",
    ] {
        ws.segwatch()
            .args(["query", sql])
            .code(1)
            .stderr_has_line("error: refused: this statement would write to the database, and auditing is read-only (use SELECT, WITH or read-only PRAGMAs)");
    }
    ws.segwatch()
        .args(["query", "SELECT 1; DELETE FROM changes"])
        .code(1)
        .stderr_has_line(
            "error: give one SQL statement at a time (found more after the first `;`)",
        );
    ws.segwatch()
        .args(["query", "SELECT nope FROM changes"])
        .code(1)
        .stderr_contains(&["no such column: nope"]);
    assert_eq!(digest(), before, "the database is unchanged");

    ws.segwatch()
        .args(["changes", "--since", "last tuesday"])
        .code(2)
        .stderr_has_line("error: invalid value 'last tuesday' for '--since <TIME>': `last tuesday` is not a time; use RFC 3339 (2026-03-01T09:30:00Z), YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (UTC)");
    ws.segwatch()
        .args(["changes", "--since", "2026-01-01", "--until", "2026-13-01"])
        .code(2)
        .stderr_has_line("error: invalid value '2026-13-01' for '--until <TIME>': `2026-13-01` is not a time; use RFC 3339 (2026-03-01T09:30:00Z), YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (UTC)");
    ws.segwatch()
        .args(["state", "--at", "2026-02-30"])
        .code(2)
        .stderr_has_line("error: invalid value '2026-02-30' for '--at <TIME>': `2026-02-30` is not a time; use RFC 3339 (2026-03-01T09:30:00Z), YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (UTC)");
    ws.segwatch()
        .args(["changes", "--since", "2026-03-02", "--until", "2026-03-01"])
        .code(1)
        .stderr_has_line("error: the interval is empty: the end (2026-03-01T00:00:00.000Z) is not after the start (2026-03-02T00:00:00.000Z)");
    ws.segwatch()
        .args(["history", "planet", "x"])
        .code(2)
        .stderr_has_line("error: invalid value 'planet' for '<KIND>': unknown resource kind `planet`; expected one of: workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan, destination_filter, destination_subscription, source_schema_settings, transformation, reverse_etl_model");
    ws.segwatch()
        .args(["history", "user", "nobody@nowhere.io"])
        .code(1)
        .stderr_has_line("error: no user with id or name `nobody@nowhere.io` was ever observed in this workspace");
    assert_eq!(digest(), before);
}
