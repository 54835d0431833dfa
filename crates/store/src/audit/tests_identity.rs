//! The identity views of schema 16: `audit_effective_access` equals `EffectiveAccess` of every
//! snapshot; `audit_user_activity` and `audit_api_tokens` read the stored audit trail; and
//! `Store::trail_activity` (the poll's `last_acting` / `trail_since`).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{CommitTarget, PollStats, Store};
use segwatch_core::access::{EffectiveAccess, Via};
use segwatch_core::alerts::AlertPlan;
use segwatch_core::diff::plan;
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::trail::{AuditEvent, Mark, TrailRead};

/// Commits one poll of `resources` (with a read of the trail, when given); its snapshot id.
fn commit(store: &mut Store, ws: i64, resources: &[Resource], trail: Option<&TrailRead>) -> i64 {
    let id = store.begin_snapshot(ws).unwrap();
    let base = store.latest_complete(ws).unwrap();
    let current = store.current_versions(ws).unwrap();
    let delta = plan(resources, &current, base.is_none(), |v| {
        store.version_value(v)
    })
    .unwrap();
    let target = CommitTarget {
        workspace_id: ws,
        snapshot_id: id,
        base,
        segment_workspace_id: "seg-ws",
        stats: PollStats {
            resource_count: resources.len(),
            api_requests: 1,
            duration: Duration::from_millis(1),
        },
        trail,
        kinds: &ResourceKind::ALL,
        kind_status: &Default::default(),
        confirm_requests: 0,
        quarantine: &[],
        access: None,
        flow_fields: None,
    };
    store
        .commit_snapshot(&target, &delta, &AlertPlan::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(3));
    id.get()
}

fn resource(kind: ResourceKind, id: &str, name: &str, body: Value) -> Resource {
    Resource::new(kind, id.into(), name.into(), body)
}

fn perm(role: &str, resources: Value, labels: Option<Value>) -> Value {
    let mut p = json!({"roleId": format!("r-{role}"), "roleName": role, "resources": resources});
    if let Some(labels) = labels {
        p["labels"] = labels;
    }
    p
}

fn lbl(key: &str, value: &str) -> Value {
    json!({"key": key, "value": value})
}

fn user(id: &str, email: &str, permissions: Vec<Value>) -> Resource {
    resource(
        ResourceKind::User,
        id,
        email,
        json!({"id": id, "email": email, "permissions": permissions}),
    )
}

fn group(
    id: &str,
    name: &str,
    members: Value,
    invites: Value,
    permissions: Vec<Value>,
) -> Resource {
    resource(
        ResourceKind::Group,
        id,
        name,
        json!({"id": id, "name": name, "members": members, "invites": invites,
               "permissions": permissions}),
    )
}

fn source(id: &str, labels: Vec<Value>) -> Resource {
    resource(
        ResourceKind::Source,
        id,
        &format!("Source {id}"),
        json!({"id": id, "name": format!("Source {id}"), "labels": labels}),
    )
}

/// A grant as a comparable tuple: user id, email, invite, resource type and id, role id and
/// name, via group id and name, label filter as sorted `key:value`.
type Row = (
    String,
    String,
    bool,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<String>,
);

fn expected(resources: &[Resource]) -> BTreeSet<Row> {
    EffectiveAccess::compute(resources)
        .grants()
        .map(|g| {
            let (via_id, via_name) = match g.via {
                Via::Direct => (String::new(), String::new()),
                Via::Group { id, name } => (id, name),
            };
            let mut filter: Vec<String> = g
                .label_filter
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            filter.sort();
            (
                g.user.id,
                g.user.email,
                g.invite,
                g.resource.kind,
                g.resource.id,
                g.role_id,
                g.role_name,
                via_id,
                via_name,
                filter,
            )
        })
        .collect()
}

/// The view's rows held at snapshot `at`, in the documented form of the query.
fn view_at(store: &Store, workspace: &str, at: i64) -> BTreeSet<Row> {
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT user_id, email, invite, resource_type, resource_id, role_id, role_name,
                    via, via_group_id, via_group_name, label_filter
             FROM audit_effective_access
             WHERE workspace = ?2 AND valid_from_snapshot_id <= ?1
               AND (valid_to_snapshot_id IS NULL OR valid_to_snapshot_id > ?1)",
        )
        .unwrap();
    stmt.query_map(rusqlite::params![at, workspace], |r| {
        let via: String = r.get(7)?;
        let filter: Option<String> = r.get(10)?;
        let mut filter: Vec<String> = filter
            .map(|f| serde_json::from_str(&f).unwrap())
            .unwrap_or_default();
        filter.sort();
        let group_id: Option<String> = r.get(8)?;
        let group_name: Option<String> = r.get(9)?;
        assert_eq!(via == "group", group_id.is_some());
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, i64>(2)? == 1,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            group_id.unwrap_or_default(),
            group_name.unwrap_or_default(),
            filter,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Every case of docs/ACCESS.md: direct grants, groups (members by id, by email, a bare email,
/// a member that is no user), pending invites, unrestricted workspace permissions, labels on
/// the workspace resource and on the permission (any of them), labels on a source ignored.
fn states() -> Vec<Vec<Resource>> {
    let ws = || json!([{"id": "w1", "type": "WORKSPACE"}]);
    let first = vec![
        resource(
            ResourceKind::Workspace,
            "w1",
            "Acme",
            json!({"id": "w1", "name": "Acme"}),
        ),
        user(
            "u1",
            "ann@acme.io",
            vec![perm(
                "Source Admin",
                json!([{"id": "s1", "type": "SOURCE", "labels": [lbl("environment", "dev")]}]),
                None,
            )],
        ),
        user(
            "u2",
            "bob@acme.io",
            vec![perm("Workspace Owner", ws(), None)],
        ),
        user(
            "u3",
            "cat@acme.io",
            vec![perm(
                "Source Read-only",
                json!([{"id": "w1", "type": "WORKSPACE", "labels": [lbl("environment", "prod")]}]),
                Some(json!([lbl("team", "x")])),
            )],
        ),
        user("u4", "dan@acme.io", vec![]),
        group(
            "g1",
            "Staging admins",
            json!([{"id": "u1", "email": "ann@acme.io"}, {"id": "ghost", "email": "ghost@x.io"},
                   "cat@acme.io", "stranger@x.io", {"email": "dan@acme.io"},
                   {"email": "nobody@x.io"}]),
            json!(["new@x.io"]),
            vec![
                perm(
                    "Source Admin",
                    ws(),
                    Some(json!([lbl("environment", "staging")])),
                ),
                perm("Minimal Workspace Access", ws(), None),
            ],
        ),
        source("s1", vec![lbl("environment", "prod")]),
        source("s2", vec![lbl("environment", "staging")]),
        source("s3", vec![]),
        source("s4", vec![lbl("team", "x"), lbl("environment", "prod")]),
    ];
    // s2 relabelled prod, bob removed, the group renamed and joined by bob's id (no user now),
    // dan's direct grant added.
    let mut second = first.clone();
    second.retain(|r| r.id != "u2" && r.id != "s2" && r.id != "g1" && r.id != "u4");
    second.push(source("s2", vec![lbl("environment", "prod")]));
    second.push(user(
        "u4",
        "dan@acme.io",
        vec![perm(
            "Source Admin",
            json!([{"id": "s3", "type": "SOURCE"}]),
            None,
        )],
    ));
    second.push(group(
        "g1",
        "Staging & prod admins",
        json!([{"id": "u1", "email": "ann@acme.io"}, {"id": "u2", "email": "bob@acme.io"}]),
        json!([]),
        vec![perm(
            "Source Admin",
            ws(),
            Some(json!([
                lbl("environment", "staging"),
                lbl("environment", "prod")
            ])),
        )],
    ));
    // bob is back (same id): he is a user again, and a member of g1.
    let mut third = second.clone();
    third.push(user("u2", "bob@acme.io", vec![]));
    // Nothing that matters to access changes.
    let fourth = third.clone();
    vec![first, second, third, fourth]
}

#[test]
fn effective_access_view_equals_effective_access_at_every_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let mut seen = Vec::new();
    for state in states() {
        let id = commit(&mut store, ws, &state, None);
        seen.push((id, state));
    }
    for (id, state) in &seen {
        let want = expected(state);
        assert!(!want.is_empty());
        assert_eq!(view_at(&store, "default", *id), want, "snapshot {id}");
    }
    // The first state's cases, spelled out: a bare email that is no user, a member by id that
    // is no user, the invite, labels on a source ignored, an unrestricted workspace grant.
    let first = view_at(&store, "default", seen[0].0);
    let has = |user: &str, email: &str, kind: &str, id: &str, invite: bool| {
        first
            .iter()
            .any(|r| r.0 == user && r.1 == email && r.3 == kind && r.4 == id && r.2 == invite)
    };
    assert!(has("", "stranger@x.io", "SOURCE", "s2", false));
    assert!(has("ghost", "ghost@x.io", "WORKSPACE", "w1", false));
    assert!(has("", "new@x.io", "SOURCE", "s2", true));
    assert!(has("u1", "ann@acme.io", "SOURCE", "s1", false));
    assert!(has("u2", "bob@acme.io", "WORKSPACE", "w1", false));
    assert!(
        has("u3", "cat@acme.io", "SOURCE", "s4", false),
        "labels on the permission count"
    );
    assert!(
        !first.iter().any(|r| r.1 == "nobody@x.io"),
        "a member with neither id nor user"
    );
}

#[test]
fn effective_access_view_equals_effective_access_on_random_histories() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let mut seed = 0x5eed_u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for w in 0..12 {
        let ws = store.workspace_id(&format!("w{w}")).unwrap();
        let mut ids = Vec::new();
        let mut states = Vec::new();
        for _ in 0..6 {
            let envs = ["prod", "staging", "dev"];
            let mut state = vec![resource(
                ResourceKind::Workspace,
                "w1",
                "Acme",
                json!({"id": "w1"}),
            )];
            for s in 0..5 {
                let labels = (0..next(3))
                    .map(|_| lbl("environment", envs[next(3) as usize]))
                    .collect();
                state.push(source(&format!("s{s}"), labels));
            }
            let perms = |next: &mut dyn FnMut(u64) -> u64| -> Vec<Value> {
                (0..next(3))
                    .map(|_| match next(4) {
                        0 => perm(
                            "Workspace Owner",
                            json!([{"id": "w1", "type": "WORKSPACE"}]),
                            None,
                        ),
                        1 => perm(
                            "Source Admin",
                            json!([{"id": format!("s{}", next(5)), "type": "SOURCE"}]),
                            None,
                        ),
                        2 => perm(
                            "Source Read-only",
                            json!([{"id": "w1", "type": "WORKSPACE",
                            "labels": [lbl("environment", envs[next(3) as usize])]}]),
                            None,
                        ),
                        _ => perm(
                            "Source Admin",
                            json!([{"id": "w1", "type": "WORKSPACE"}]),
                            Some(json!([
                                lbl("environment", envs[next(3) as usize]),
                                lbl("environment", envs[next(3) as usize])
                            ])),
                        ),
                    })
                    .collect()
            };
            for u in 0..6 {
                if next(5) > 0 {
                    let p = perms(&mut next);
                    state.push(user(&format!("u{u}"), &format!("u{u}@acme.io"), p));
                }
            }
            for g in 0..2 {
                // By id, as a bare email, or an id that is no user; users come and go.
                let mut members: Vec<Value> = Vec::new();
                for u in 0..6 {
                    if next(2) == 0 {
                        members.push(match next(6) {
                            0 => json!(format!("u{u}@acme.io")),
                            1 => json!({"id": format!("x{u}"), "email": format!("x{u}@x.io")}),
                            // An id that is no user, with a user's email: matched by email.
                            2 => json!({"id": format!("x{u}"), "email": format!("u{u}@acme.io")}),
                            3 => json!({"email": format!("u{u}@acme.io")}),
                            _ => json!({"id": format!("u{u}"), "email": format!("u{u}@acme.io")}),
                        });
                    }
                }
                let invites: Vec<String> = (0..next(2)).map(|i| format!("i{i}@x.io")).collect();
                let p = perms(&mut next);
                state.push(group(
                    &format!("g{g}"),
                    &format!("G{g}"),
                    json!(members),
                    json!(invites),
                    p,
                ));
            }
            ids.push(commit(&mut store, ws, &state, None));
            states.push(state);
        }
        for (id, state) in ids.iter().zip(&states) {
            let view = view_at(&store, &format!("w{w}"), *id);
            assert_eq!(view, expected(state), "workspace w{w}, snapshot {id}");
        }
    }
}

fn event(
    id: &str,
    at: &str,
    kind: &str,
    actor: &str,
    email: Option<&str>,
    resource: &str,
) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        occurred_at: at.parse().unwrap(),
        event_type: kind.into(),
        actor: actor.into(),
        actor_email: email.map(String::from),
        resource_id: resource.into(),
        resource_type: "x".into(),
        resource_name: format!("name of {resource}"),
        body: "{}".into(),
    }
}

fn read(start: &str, end: &str, events: Vec<AuditEvent>) -> TrailRead {
    let end: DateTime<Utc> = end.parse().unwrap();
    TrailRead {
        start: start.parse().unwrap(),
        end,
        events_read: events.len(),
        new_events: events,
        mark: Mark {
            at: end,
            ids: Vec::new(),
        },
    }
}

#[test]
fn trail_activity_and_the_activity_and_token_views_read_the_stored_trail() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let users = vec![
        user("u1", "ann@acme.io", vec![]),
        user("u2", "Bob@Acme.io", vec![]),
        user("u3", "cat@acme.io", vec![]),
    ];
    // No read of the trail yet: nothing to vouch for.
    let first = commit(&mut store, ws, &users, None);
    assert_eq!(store.trail_activity(ws, None).unwrap(), None);
    let first_read = read(
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
        vec![
            event(
                "events/1",
                "2026-01-10T00:00:00Z",
                "Source Modified",
                "u1",
                None,
                "s1",
            ),
            event(
                "events/2",
                "2026-01-20T00:00:00Z",
                "Access Token Created",
                "u1",
                Some("ann@acme.io"),
                "TOK1",
            ),
            event(
                "events/3",
                "2026-01-25T00:00:00Z",
                "Source Modified",
                "public-api-token/TOK1",
                None,
                "s1",
            ),
        ],
    );
    let second = commit(&mut store, ws, &users, Some(&first_read));
    let second_read = read(
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        vec![
            event(
                "events/4",
                "2026-02-10T00:00:00Z",
                "User Updated",
                "other-id",
                Some("bob@acme.io"),
                "u9",
            ),
            event(
                "events/5",
                "2026-02-11T00:00:00Z",
                "Source Modified",
                "public-api-token/TOK1",
                None,
                "s2",
            ),
            event(
                "events/6",
                "2026-02-12T00:00:00Z",
                "Source Modified",
                "public-api-token/OLD",
                None,
                "s2",
            ),
            event(
                "events/7",
                "2026-02-13T00:00:00Z",
                "Access Token Deleted",
                "u1",
                Some("ann@acme.io"),
                "TOK1",
            ),
        ],
    );
    let third = commit(&mut store, ws, &users, Some(&second_read));

    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let now = store.trail_activity(ws, None).unwrap().unwrap();
    assert_eq!(now.read_since, t("2026-01-01T00:00:00Z"));
    assert_eq!(
        now.last_acting("u1", Some("ann@acme.io")),
        Some(t("2026-02-13T00:00:00Z"))
    );
    assert_eq!(
        now.last_acting("u2", Some("Bob@Acme.io")),
        Some(t("2026-02-10T00:00:00Z"))
    );
    assert_eq!(now.last_acting("u3", Some("cat@acme.io")), None);
    // As of the second snapshot: only what its poll and those before it read.
    let then = store
        .trail_activity(ws, Some(SnapshotId(second)))
        .unwrap()
        .unwrap();
    assert_eq!(then.last_acting("u2", Some("bob@acme.io")), None);
    assert_eq!(
        store.trail_activity(ws, Some(SnapshotId(first))).unwrap(),
        None
    );
    assert!(third > second);

    type Activity = (String, Option<String>, Option<String>, Option<i64>);
    let rows: Vec<Activity> = store
        .connection()
        .prepare(
            "SELECT email, last_acting_at, trail_read_since, days_without_action
             FROM audit_user_activity ORDER BY user_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let since = Some("2026-01-01T00:00:00.000Z".to_string());
    assert_eq!(rows[0].0, "ann@acme.io");
    assert_eq!(rows[0].1.as_deref(), Some("2026-02-13T00:00:00.000Z"));
    assert_eq!(
        rows[1].1.as_deref(),
        Some("2026-02-10T00:00:00.000Z"),
        "by email, any case"
    );
    assert_eq!((rows[2].1.as_deref(), &rows[2].2), (None, &since));
    let days = |at: &str| (Utc::now() - t(at)).num_days();
    assert_eq!(rows[0].3, Some(days("2026-02-13T00:00:00Z")));
    assert_eq!(
        rows[2].3,
        Some(days("2026-01-01T00:00:00Z")),
        "counted from the first read"
    );

    type Token = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
    );
    let tokens: Vec<Token> = store
        .connection()
        .prepare(
            "SELECT token_id, name, created_at, created_by_email, last_acting_at, actions, deleted_at
             FROM audit_api_tokens ORDER BY token_id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        tokens,
        vec![
            (
                "OLD".into(),
                None,
                None,
                None,
                Some("2026-02-12T00:00:00.000Z".into()),
                1,
                None
            ),
            (
                "TOK1".into(),
                Some("name of TOK1".into()),
                Some("2026-01-20T00:00:00.000Z".into()),
                Some("ann@acme.io".into()),
                Some("2026-02-11T00:00:00.000Z".into()),
                2,
                Some("2026-02-13T00:00:00.000Z".into()),
            ),
        ]
    );
}

/// How long one filtered question takes on a mid-sized workspace (the view computes every
/// grant of every window before filtering). Run with `cargo test --release -p segwatch-store
/// effective_access_view_at_scale -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run it by name"]
fn effective_access_view_at_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let envs = ["prod", "staging", "dev"];
    let mut state = vec![resource(
        ResourceKind::Workspace,
        "w1",
        "Acme",
        json!({"id": "w1"}),
    )];
    for s in 0..1_000 {
        state.push(source(
            &format!("s{s}"),
            vec![lbl("environment", envs[s % 3])],
        ));
    }
    for u in 0..5_000 {
        let p = if u % 20 == 0 {
            perm(
                "Source Admin",
                json!([{"id": "w1", "type": "WORKSPACE",
                "labels": [lbl("environment", envs[u % 3])]}]),
                None,
            )
        } else {
            perm(
                "Source Read-only",
                json!([{"id": format!("s{}", u % 1000), "type": "SOURCE"}]),
                None,
            )
        };
        state.push(user(&format!("u{u}"), &format!("u{u}@acme.io"), vec![p]));
    }
    for g in 0..100 {
        let members: Vec<Value> = (0..30)
            .map(|i| json!({"id": format!("u{}", (g * 37 + i) % 5_000), "email": format!("u{}@acme.io", (g * 37 + i) % 5_000)}))
            .collect();
        state.push(group(
            &format!("g{g}"),
            &format!("G{g}"),
            json!(members),
            json!([]),
            vec![perm(
                "Source Admin",
                json!([{"id": format!("s{g}"), "type": "SOURCE"}]),
                None,
            )],
        ));
    }
    commit(&mut store, ws, &state, None);
    let started = std::time::Instant::now();
    let total: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM audit_effective_access", [], |r| {
            r.get(0)
        })
        .unwrap();
    let all = started.elapsed();
    let started = std::time::Instant::now();
    let one: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM audit_effective_access WHERE email = 'u20@acme.io'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "{total} grants in {all:?}; one user's {one} in {:?}",
        started.elapsed()
    );
}

/// The poll's one grouped query on a large trail: 1,000,000 events by 100,000 users. Run with
/// `cargo test --release -p segwatch-store trail_activity_at_scale -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run it by name"]
fn trail_activity_at_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let empty = read("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", Vec::new());
    let snapshot = commit(&mut store, ws, &[], Some(&empty));
    let conn = store.connection();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO audit_events (workspace_id, event_id, occurred_at, type, actor,
                    actor_email, resource_id, resource_type, resource_name, body, snapshot_id)
                 VALUES (?1, ?2, ?3, 'Source Modified', ?4, ?5, 's1', 'source', 's1', '{}', ?6)",
            )
            .unwrap();
        for i in 0..1_000_000u32 {
            let user = i % 100_000;
            let at = format!("2026-{:02}-{:02}T00:00:00.000Z", 1 + i % 12, 1 + i % 28);
            let email = (i % 2 == 0).then(|| format!("user{user}@acme.io"));
            insert
                .execute(rusqlite::params![
                    ws,
                    format!("events/{i}"),
                    at,
                    format!("u{user}"),
                    email,
                    snapshot
                ])
                .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    let started = std::time::Instant::now();
    let activity = store.trail_activity(ws, None).unwrap().unwrap();
    println!(
        "1M events, {} actors: Store::trail_activity in {:?}",
        activity.actors(),
        started.elapsed()
    );
    assert_eq!(activity.actors(), 100_000);
}
