//! `audit_data_flows`: one row per flow over the time both ends held their state.

use super::*;

fn destination(id: &str, source: &str, enabled: bool) -> Resource {
    Resource::new(
        ResourceKind::Destination,
        id.into(),
        format!("Dest {id}"),
        json!({"id": id, "sourceId": source, "enabled": enabled}),
    )
}

fn warehouse(id: &str, sources: &[&str]) -> Resource {
    Resource::new(
        ResourceKind::Warehouse,
        id.into(),
        format!("WH {id}"),
        json!({"id": id, "enabled": true, "connectedSourceIds": sources}),
    )
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
);

#[test]
fn data_flows_have_a_row_per_flow_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let (p1, _) = commit(
        &mut store,
        ws,
        &[
            source("s1", "prod"),
            source("s2", "dev"),
            destination("d1", "s1", true),
            warehouse("w1", &["s1", "s2"]),
        ],
    );
    let (p2, _) = commit(
        &mut store,
        ws,
        &[
            source("s1", "prod"),
            source("s2", "dev"),
            destination("d1", "s1", false),
            warehouse("w1", &["s1", "s2"]),
        ],
    );
    let (p3, _) = commit(
        &mut store,
        ws,
        &[
            source("s1", "staging"),
            source("s2", "dev"),
            destination("d1", "s1", false),
            warehouse("w1", &["s2"]),
        ],
    );
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT source_id, target_kind, target_id, source_environment, source_production,
                    enabled, valid_from_snapshot_id, valid_to_snapshot_id
             FROM audit_data_flows WHERE personal_fields IS NULL",
        )
        .unwrap();
    let mut rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.sort();
    let row = |s: &str, k: &str, t: &str, env: &str, prod, on, from, to| -> Row {
        (
            s.into(),
            k.into(),
            t.into(),
            Some(env.into()),
            prod,
            on,
            from,
            to,
        )
    };
    assert_eq!(
        rows,
        vec![
            // d1 enabled while s1 was prod, then disabled, then s1 relabelled.
            row("s1", "destination", "d1", "prod", 1, 0, p2, Some(p3)),
            row("s1", "destination", "d1", "prod", 1, 1, p1, Some(p2)),
            row("s1", "destination", "d1", "staging", 0, 0, p3, None),
            // w1 synced s1 until p3 (the warehouse's version and s1's both end there).
            row("s1", "warehouse", "w1", "prod", 1, 1, p1, Some(p3)),
            row("s2", "warehouse", "w1", "dev", 0, 1, p1, Some(p3)),
            row("s2", "warehouse", "w1", "dev", 0, 1, p3, None),
        ]
    );
    // The documented question: current flows from production sources.
    let current: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM audit_data_flows WHERE valid_to_at IS NULL AND source_production = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(current, 0);
}

#[test]
fn personal_fields_are_unknown_before_they_were_first_computed_then_follow_their_rows() {
    use segwatch_core::flows::stored::{FlowFacts, FlowFieldsUpdate};
    let facts = |via: &str, fields: &[&str]| FlowFacts {
        via: via.to_string(),
        fields: fields.iter().map(|f| f.to_string()).collect(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let key = || {
        (
            "s1".to_string(),
            "destination".to_string(),
            "d1".to_string(),
        )
    };
    let mut resources = vec![source("s1", "prod"), destination("d1", "s1", true)];
    let (p1, _) = commit(&mut store, ws, &resources);
    // An upgraded database: the fields are first computed at p2.
    resources.push(source("s2", "dev"));
    let start = FlowFieldsUpdate {
        patterns: "email".into(),
        close: vec![],
        open: vec![(key(), facts("destination", &["email"]))],
    };
    let (p2, _) = commit_flows(&mut store, ws, &resources, Some(&start));
    let tracked = store.tracked_flow_fields(ws).unwrap().unwrap();
    assert_eq!(tracked.patterns, "email");
    let row = tracked.open[0].id;
    resources.push(destination("d2", "s2", true));
    let grew = FlowFieldsUpdate {
        patterns: "email".into(),
        close: vec![row],
        open: vec![(
            key(),
            facts("reverse ETL model Scores", &["email", "phone"]),
        )],
    };
    let (p3, _) = commit_flows(&mut store, ws, &resources, Some(&grew));
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT via, personal_fields, valid_from_snapshot_id, valid_to_snapshot_id
             FROM audit_data_flows WHERE target_id = 'd1' ORDER BY valid_from_snapshot_id",
        )
        .unwrap();
    type Row = (String, Option<String>, i64, Option<i64>);
    let rows: Vec<Row> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("destination".into(), None, p1, Some(p2)),
            (
                "destination".into(),
                Some(r#"["email"]"#.into()),
                p2,
                Some(p3)
            ),
            (
                "reverse ETL model Scores".into(),
                Some(r#"["email","phone"]"#.into()),
                p3,
                None
            ),
        ]
    );
    // The rows are evidence: each sealed in the link of the snapshot that wrote it.
    store
        .connection()
        .execute(
            "UPDATE flow_personal_fields SET fields = '[]' WHERE valid_from = ?1",
            [p2],
        )
        .unwrap();
    let report = store.verify_chain().unwrap();
    let text = format!("{report:?}");
    assert!(
        text.contains("a flow's personal-field row it opened was edited"),
        "{text}"
    );
}

#[test]
fn verify_names_flow_field_rows_left_by_a_deleted_snapshot() {
    use segwatch_core::flows::stored::{FlowFacts, FlowFieldsUpdate};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path).unwrap();
    let ws = store.workspace_id("default").unwrap();
    let resources = vec![source("s1", "prod"), destination("d1", "s1", true)];
    commit(&mut store, ws, &resources);
    let start = FlowFieldsUpdate {
        patterns: "email".into(),
        close: vec![],
        open: vec![(
            ("s1".into(), "destination".into(), "d1".into()),
            FlowFacts {
                via: "destination".into(),
                fields: vec!["email".into()],
            },
        )],
    };
    let (p2, _) = commit_flows(&mut store, ws, &resources, Some(&start));
    commit(&mut store, ws, &resources);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn.execute("DELETE FROM snapshots WHERE id = ?1", [p2])
        .unwrap();
    let report = format!("{:?}", store.verify_chain().unwrap());
    assert!(report.contains("flow field rows stored: 1"), "{report}");
}
