use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{CommitTarget, PollStats};
use segwatch_core::alerts::AlertPlan;
use segwatch_core::diff::plan;
use segwatch_core::model::Resource;

mod flows;

fn user(id: &str, email: &str, role: &str) -> Resource {
    Resource::new(
        ResourceKind::User,
        id.into(),
        email.into(),
        json!({"id": id, "email": email, "permissions": [
            {"roleId": role, "roleName": role, "resources": [{"id": "w", "type": "WORKSPACE"}]}
        ]}),
    )
}

fn source(id: &str, env: &str) -> Resource {
    Resource::new(
        ResourceKind::Source,
        id.into(),
        id.into(),
        json!({"id": id, "name": id, "labels": [{"key": "environment", "value": env}]}),
    )
}

/// Commits one poll of `resources`, as `poll::Poller` does; returns the snapshot and its
/// observation time.
fn commit(store: &mut Store, ws: i64, resources: &[Resource]) -> (i64, String) {
    commit_flows(store, ws, resources, None)
}

/// [`commit`] with what the poll computed of its flows' personal fields.
fn commit_flows(
    store: &mut Store,
    ws: i64,
    resources: &[Resource],
    flow_fields: Option<&segwatch_core::flows::stored::FlowFieldsUpdate>,
) -> (i64, String) {
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
        trail: None,
        kinds: &segwatch_core::model::ResourceKind::ALL,
        kind_status: &Default::default(),
        confirm_requests: 0,
        quarantine: &[],
        access: None,
        flow_fields,
    };
    store
        .commit_snapshot(&target, &delta, &AlertPlan::default())
        .unwrap();
    let at: String = store
        .connection()
        .query_row(
            "SELECT finished_at FROM snapshots WHERE id = ?1",
            [id.get()],
            |r| r.get(0),
        )
        .unwrap();
    // Observation times are milliseconds; keep consecutive polls apart.
    std::thread::sleep(Duration::from_millis(3));
    (id.get(), at)
}

fn instant(text: &str) -> DateTime<Utc> {
    parse_instant(text).unwrap()
}

/// One millisecond before a stored time.
fn just_before(at: &str) -> DateTime<Utc> {
    instant(at) - chrono::Duration::milliseconds(1)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    ws: i64,
    /// Snapshot id, observation time and resources of each poll.
    polls: Vec<(i64, String, Vec<Resource>)>,
}

/// Five polls: alice is promoted, bob is removed and comes back (same id) with another role,
/// a source is relabelled, and a second `dup@acme.io` user (new id) replaces the first.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let states = vec![
        vec![
            user("a", "alice@acme.io", "Member"),
            user("b", "bob@acme.io", "Member"),
            user("d1", "dup@acme.io", "Member"),
            source("s1", "dev"),
        ],
        vec![
            user("a", "alice@acme.io", "Workspace Owner"),
            user("b", "bob@acme.io", "Member"),
            user("d1", "dup@acme.io", "Member"),
            source("s1", "prod"),
        ],
        vec![
            user("a", "alice@acme.io", "Workspace Owner"),
            source("s1", "prod"),
        ],
        vec![
            user("a", "alice@acme.io", "Workspace Owner"),
            user("b", "bob@acme.io", "Workspace Owner"),
            user("d2", "dup@acme.io", "Member"),
            source("s1", "prod"),
        ],
        vec![
            user("a", "alice@acme.io", "Workspace Owner"),
            user("b", "bob@acme.io", "Workspace Owner"),
            user("d2", "dup@acme.io", "Member"),
            source("s1", "prod"),
        ],
    ];
    let mut polls = Vec::new();
    for resources in states {
        let (id, at) = commit(&mut store, ws, &resources);
        polls.push((id, at, resources));
    }
    Fixture {
        _dir: dir,
        store,
        ws,
        polls,
    }
}

fn ids_and_bodies(resources: &[Resource]) -> Vec<(String, Value)> {
    let mut out: Vec<_> = resources
        .iter()
        .map(|r| (r.id.clone(), serde_json::from_str(&r.body).unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn instants_in_every_accepted_form() {
    let cases = [
        ("2026-03-01T09:30:00Z", "2026-03-01T09:30:00.000Z"),
        ("2026-03-01T10:30:00+01:00", "2026-03-01T09:30:00.000Z"),
        ("2026-03-01T09:30:00.1234Z", "2026-03-01T09:30:00.123Z"),
        ("2026-03-01", "2026-03-01T00:00:00.000Z"),
        ("2026-03-01 09:30", "2026-03-01T09:30:00.000Z"),
        ("2026-03-01 09:30:15", "2026-03-01T09:30:15.000Z"),
        ("2026-03-01T09:30", "2026-03-01T09:30:00.000Z"),
        (" 2026-03-01 09:30:15.5 ", "2026-03-01T09:30:15.500Z"),
    ];
    for (text, stored) in cases {
        assert_eq!(format_instant(instant(text)), stored, "{text}");
    }
    for bad in [
        "yesterday",
        "2026-13-01",
        "2026-03-01 25:00",
        "01/03/2026",
        "",
    ] {
        let err = parse_instant(bad).unwrap_err().to_string();
        assert!(
            err.contains("RFC 3339") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
    }
}

#[test]
fn queries_read_and_never_write() {
    let f = fixture();
    let result = run_query(
        &f.store,
        "SELECT kind, count(*) AS n FROM resource_versions GROUP BY kind ORDER BY kind",
    )
    .unwrap();
    assert_eq!(result.columns, ["kind", "n"]);
    assert_eq!(
        result.rows,
        vec![
            vec![SqlValue::Text("source".into()), SqlValue::Integer(2)],
            vec![SqlValue::Text("user".into()), SqlValue::Integer(6)],
        ]
    );
    let before = run_query(&f.store, "SELECT count(*) FROM changes")
        .unwrap()
        .rows;
    // The store was opened read-write: query_only alone must stop every write.
    for sql in [
        "DELETE FROM changes",
        "UPDATE snapshots SET status = 'failed'",
        "INSERT INTO workspaces (name, created_at) VALUES ('x', 'y')",
        "DROP VIEW audit_changes",
        "CREATE TEMP TABLE t (x)",
        "PRAGMA user_version = 99",
        "VACUUM",
    ] {
        let err = run_query(&f.store, sql).unwrap_err();
        assert!(matches!(err, AuditError::WouldWrite), "{sql}: {err}");
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    assert!(matches!(
        run_query(&f.store, "SELECT 1; DELETE FROM changes").unwrap_err(),
        AuditError::MultipleStatements
    ));
    assert!(matches!(
        run_query(&f.store, "  -- nothing\n").unwrap_err(),
        AuditError::EmptyQuery
    ));
    let err = run_query(&f.store, "SELECT nope FROM changes").unwrap_err();
    assert!(err.to_string().contains("no such column: nope"), "{err}");
    assert_eq!(
        run_query(&f.store, "SELECT count(*) FROM changes")
            .unwrap()
            .rows,
        before
    );
    let version: i64 = f
        .store
        .connection()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::SCHEMA_VERSION);
}

#[test]
fn state_at_any_instant_is_the_snapshot_observed_then() {
    let f = fixture();
    for (i, (id, at, resources)) in f.polls.iter().enumerate() {
        // Exactly at the observation time, and any time until the next one.
        let state = state_at(&f.store, f.ws, instant(at), None).unwrap();
        assert_eq!(
            (state.snapshot_id, &state.observed_at.to_string()),
            (*id, at)
        );
        let got: Vec<_> = state
            .resources
            .iter()
            .map(|r| (r.id.clone(), r.body.clone()))
            .collect();
        assert_eq!(got, ids_and_bodies(resources), "poll {i}");
        if let Some((_, next_at, _)) = f.polls.get(i + 1) {
            let state = state_at(&f.store, f.ws, just_before(next_at), None).unwrap();
            assert_eq!(state.snapshot_id, *id, "just before poll {}", i + 1);
        }
    }
    let users = state_at(
        &f.store,
        f.ws,
        instant(&f.polls[2].1),
        Some(ResourceKind::User),
    )
    .unwrap()
    .resources;
    assert_eq!(
        users.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a"],
        "bob and the first dup were gone at poll 3"
    );

    let err = state_at(&f.store, f.ws, just_before(&f.polls[0].1), None).unwrap_err();
    assert!(
        matches!(&err, AuditError::BeforeFirstSnapshot { first, .. } if *first == f.polls[0].1),
        "{err}"
    );
    let other = {
        let mut store = Store::open(&f._dir.path().join("a.db")).unwrap();
        store.workspace_id("other").unwrap()
    };
    assert!(matches!(
        state_at(&f.store, other, Utc::now(), None).unwrap_err(),
        AuditError::NoSnapshot
    ));
}

#[test]
fn the_views_agree_with_the_audit_functions() {
    let f = fixture();
    // Who held Workspace Owner at each poll and just before the next, through the view.
    let owners_at = |t: &str| -> Vec<String> {
        let mut stmt = f
            .store
            .connection()
            .prepare(
                "SELECT DISTINCT email FROM audit_user_roles
                 WHERE workspace = 'default' AND role_name = 'Workspace Owner'
                   AND valid_from_at <= ?1 AND (valid_to_at IS NULL OR valid_to_at > ?1)
                 ORDER BY email",
            )
            .unwrap();
        stmt.query_map([t], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let expected: [&[&str]; 5] = [
        &[],
        &["alice@acme.io"],
        &["alice@acme.io"],
        &["alice@acme.io", "bob@acme.io"],
        &["alice@acme.io", "bob@acme.io"],
    ];
    for (i, (_, at, _)) in f.polls.iter().enumerate() {
        assert_eq!(owners_at(at), expected[i], "at poll {i}");
        if let Some((_, next, _)) = f.polls.get(i + 1) {
            assert_eq!(
                owners_at(&format_instant(just_before(next))),
                expected[i],
                "before poll {}",
                i + 1
            );
        }
    }
    // audit_versions at an instant is state_at.
    for (_, at, _) in &f.polls {
        let mut from_view: Vec<(String, String)> = f
            .store
            .connection()
            .prepare(
                "SELECT resource_id, body FROM audit_versions
                 WHERE valid_from_at <= ?1 AND (valid_to_at IS NULL OR valid_to_at > ?1)",
            )
            .unwrap()
            .query_map([at], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        from_view.sort();
        let mut from_state: Vec<(String, String)> = state_at(&f.store, f.ws, instant(at), None)
            .unwrap()
            .resources
            .into_iter()
            .map(|r| (r.id, r.body.to_string()))
            .collect();
        from_state.sort();
        assert_eq!(from_view, from_state);
    }
}

#[test]
fn history_shows_removal_and_return_with_field_changes() {
    let f = fixture();
    let h = resource_history(&f.store, f.ws, ResourceKind::User, "bob@acme.io").unwrap();
    assert_eq!((h.resource_id.as_str(), h.current), ("b", true));
    let events: Vec<_> = h
        .steps
        .iter()
        .map(|s| (s.event, s.snapshot_id, s.at.to_string()))
        .collect();
    let poll = |i: usize| (f.polls[i].0, f.polls[i].1.as_str());
    assert_eq!(
        events,
        vec![
            (HistoryEvent::FirstSeen, poll(0).0, poll(0).1.to_string()),
            (HistoryEvent::Removed, poll(2).0, poll(2).1.to_string()),
            (HistoryEvent::Added, poll(3).0, poll(3).1.to_string()),
        ]
    );
    assert_eq!(h.versions.len(), 2);
    assert_eq!(
        h.versions[0].valid_to_at.map(|t| t.to_string()).as_deref(),
        Some(poll(2).1)
    );
    assert_eq!(h.versions[1].valid_from_at.to_string(), poll(3).1);
    assert!(h.steps[1].change_id.is_some() && h.steps[2].change_id.is_some());
    assert_eq!(h.steps[1].version_id, None);

    let alice = resource_history(&f.store, f.ws, ResourceKind::User, "a").unwrap();
    let modified: Vec<_> = alice
        .steps
        .iter()
        .filter(|s| s.event == HistoryEvent::Modified)
        .collect();
    assert_eq!(modified.len(), 1);
    assert_eq!(modified[0].at.to_string(), poll(1).1);
    let paths: Vec<_> = modified[0].fields.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "permissions[roleId=Member]",
            "permissions[roleId=Workspace Owner]"
        ]
    );
    assert_eq!(modified[0].fields[0].new, None, "Member was revoked");

    let source = resource_history(&f.store, f.ws, ResourceKind::Source, "s1").unwrap();
    let relabel = &source.steps[1].fields;
    assert_eq!(
        (relabel[0].path.as_str(), &relabel[0].old, &relabel[0].new),
        (
            "labels[key=environment].value",
            &Some(json!("dev")),
            &Some(json!("prod"))
        )
    );
}

#[test]
fn a_name_two_resources_had_is_ambiguous_and_unknown_names_are_not_found() {
    let f = fixture();
    let err = resource_history(&f.store, f.ws, ResourceKind::User, "dup@acme.io").unwrap_err();
    let AuditError::Ambiguous { candidates, .. } = &err else {
        panic!("{err}");
    };
    let listed: Vec<_> = candidates
        .iter()
        .map(|c| (c.id.as_str(), c.current))
        .collect();
    assert_eq!(listed, [("d1", false), ("d2", true)]);
    let message = err.to_string();
    assert!(
        message.contains("d1 (dup@acme.io, removed since")
            && message.contains("d2 (dup@acme.io, current since"),
        "{message}"
    );
    // By id it is unambiguous.
    assert_eq!(
        resource_history(&f.store, f.ws, ResourceKind::User, "d1")
            .unwrap()
            .steps
            .last()
            .unwrap()
            .event,
        HistoryEvent::Removed
    );
    let err = resource_history(&f.store, f.ws, ResourceKind::Source, "alice@acme.io").unwrap_err();
    assert!(
        matches!(err, AuditError::NotFound { .. }) && err.to_string().contains("no source"),
        "{err}"
    );
}

#[test]
fn changes_between_two_instants_with_an_optional_kind() {
    let f = fixture();
    let at = |i: usize| instant(&f.polls[i].1);
    // [poll 1, poll 3): the changes observed by polls 1 and 2.
    let report = changes_between(&f.store, f.ws, at(1), Some(at(3)), None).unwrap();
    let got: Vec<_> = report
        .changes
        .iter()
        .map(|c| (c.snapshot_id, c.kind, c.resource_id.as_str(), c.op))
        .collect();
    let (s1, s2) = (f.polls[1].0, f.polls[2].0);
    assert_eq!(
        got,
        vec![
            (s1, ResourceKind::User, "a", ChangeOp::Modified),
            (s1, ResourceKind::Source, "s1", ChangeOp::Modified),
            (s2, ResourceKind::User, "b", ChangeOp::Removed),
            (s2, ResourceKind::User, "d1", ChangeOp::Removed),
        ]
    );
    assert_eq!(report.complete_polls, 2);
    assert_eq!(
        report.first_observed_at.map(|t| t.to_string()).as_deref(),
        Some(f.polls[1].1.as_str())
    );
    assert_eq!(
        report.changes[0]
            .previous_observed_at
            .map(|t| t.to_string())
            .as_deref(),
        Some(f.polls[0].1.as_str())
    );
    let sources = changes_between(&f.store, f.ws, at(0), None, Some(ResourceKind::Source))
        .unwrap()
        .changes;
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].fields[0].path, "labels[key=environment].value");
    let err = changes_between(&f.store, f.ws, at(3), Some(at(1)), None).unwrap_err();
    assert!(matches!(err, AuditError::EmptyInterval { .. }), "{err}");
    // An interval with no poll says so rather than looking quiet.
    let later = changes_between(
        &f.store,
        f.ws,
        Utc::now() + chrono::Duration::days(1),
        None,
        None,
    )
    .unwrap();
    assert_eq!((later.complete_polls, later.changes.len()), (0, 0));
}

/// Every view auditors may use, in the order docs/SCHEMA.md lists them. Renaming or removing
/// one (or a column) breaks auditors' saved queries: this list only ever grows.
const VIEWS: &[&str] = &[
    "audit_workspaces",
    "audit_polls",
    "audit_versions",
    "audit_current_workspace",
    "audit_current_roles",
    "audit_current_users",
    "audit_current_groups",
    "audit_current_invites",
    "audit_current_sources",
    "audit_current_labels",
    "audit_current_destinations",
    "audit_current_warehouses",
    "audit_current_functions",
    "audit_current_tracking_plans",
    "audit_relationships",
    "audit_data_flows",
    "audit_user_roles",
    "audit_group_roles",
    "audit_group_members",
    "audit_changes",
    "audit_change_fields",
    "audit_alerts",
    "audit_deliveries",
    "audit_events_log",
    "audit_quarantine",
    "audit_privacy_requests",
    "audit_access_changes",
    "audit_access_reviews",
    "audit_effective_access",
    "audit_user_activity",
    "audit_api_tokens",
    "audit_current_destination_filters",
    "audit_current_destination_subscriptions",
    "audit_current_source_schema_settings",
    "audit_current_transformations",
    "audit_current_reverse_etl_models",
];

#[test]
fn every_view_and_column_is_documented_and_queryable() {
    let f = fixture();
    let conn = f.store.connection();
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut expected: Vec<String> = VIEWS.iter().map(|v| v.to_string()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected, "views in the schema");

    let doc = include_str!("../../../../docs/SCHEMA.md");
    for view in VIEWS {
        let heading = format!("### `{view}`");
        let start = doc
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/SCHEMA.md has no section {heading}"));
        let section = &doc[start + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let mut stmt = conn.prepare(&format!("SELECT * FROM {view}")).unwrap();
        let columns: Vec<String> = stmt.column_names().map(String::from).collect();
        assert!(!columns.is_empty());
        assert_eq!(columns[0], "workspace", "{view} leads with the workspace");
        for column in &columns {
            assert!(
                section.contains(&format!("| `{column}` |")),
                "docs/SCHEMA.md does not document {view}.{column}"
            );
        }
        // Every row can be read (the JSON functions and joins hold on real data).
        let mut rows = stmt.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
    }
}

#[test]
fn the_state_reconstructs_bodies_byte_for_byte() {
    let f = fixture();
    let (id, at, _) = &f.polls[3];
    let stored: HashMap<String, String> = f
        .store
        .resources_at(f.ws, segwatch_core::ids::SnapshotId(*id))
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.body))
        .collect();
    let state = state_at(&f.store, f.ws, instant(at), None).unwrap();
    assert_eq!(state.resources.len(), stored.len());
    for r in &state.resources {
        assert_eq!(r.body.to_string(), stored[&r.id], "{}", r.id);
    }
}

#[test]
fn the_documented_examples_run() {
    let f = fixture();
    let doc = include_str!("../../../../docs/SCHEMA.md");
    let examples: Vec<&str> = doc
        .split("```sql\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").expect("closed block")])
        .collect();
    assert!(examples.len() >= 8, "{} examples", examples.len());
    for sql in examples {
        let result = run_query(&f.store, sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        assert!(!result.columns.is_empty(), "{sql}");
    }
    // The grant/revocation example on this history: alice's promotion, observed at poll 1.
    let grants = doc
        .split("```sql\n")
        .find(|b| b.contains("'revoked' ELSE 'granted'"))
        .map(|b| &b[..b.find("```").unwrap()])
        .unwrap();
    let rows = run_query(&f.store, grants).unwrap().rows;
    assert_eq!(
        rows,
        vec![vec![
            SqlValue::Text(f.polls[1].1.clone()),
            SqlValue::Text("alice@acme.io".into()),
            SqlValue::Text("granted".into())
        ]]
    );
}
