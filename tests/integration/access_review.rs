//! `segwatch access review` after polls of the simulated workspace: the export (CSV, JSON,
//! HTML) equals an independent computation from the simulator's state; a filled-in review is
//! imported and sealed in the chain (`verify` passes, then names the review once a decision is
//! edited in the database); bad files exit 1 naming file, line and column; the follow-up shows
//! a revocation carried out by the simulator and one that was not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use segwatch_simulator::{Mutation, Permission, WorkspaceState};

use crate::util::TestWorkspace;

const COLUMNS: [&str; 24] = [
    "Account name",
    "Account owner",
    "Role",
    "Status",
    "workspace",
    "snapshot_id",
    "user_email",
    "user_name",
    "user_id",
    "user_type",
    "role_id",
    "resource_type",
    "resource_id",
    "resource_name",
    "resource_labels",
    "via",
    "via_group_id",
    "label_filter",
    "granted_since",
    "last_seen_acting",
    "decision",
    "reviewer",
    "reviewed_at",
    "comment",
];

type Row = Vec<String>;

/// A time in one form, so that the simulator's and the store's forms compare.
fn canonical_time(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        Err(_) => text.to_string(),
    }
}

/// Every review row of the simulated workspace, from its state and its audit trail alone (not
/// from segwatch's code): one row per user × permission resource (a label-restricted
/// workspace permission: per source carrying any of its labels), direct and through each group.
fn expected_rows(
    s: &WorkspaceState,
    events: &[segwatch_simulator::AuditEvent],
    snapshot_id: i64,
    first_snapshot_at: &str,
) -> BTreeSet<Row> {
    let mut last_acting: BTreeMap<String, String> = BTreeMap::new();
    for e in events {
        let email = e.actor_email.clone().or_else(|| {
            s.users
                .iter()
                .find(|u| u.id == e.actor)
                .map(|u| u.email.clone())
        });
        if let Some(email) = email {
            let at = canonical_time(&e.timestamp);
            let slot = last_acting.entry(email.to_ascii_lowercase()).or_default();
            if *slot < at {
                *slot = at;
            }
        }
    }
    let name_of = |kind: &str, id: &str| -> String {
        match kind {
            "WORKSPACE" if s.workspace.id == id => s.workspace.name.clone(),
            "SOURCE" => s
                .sources
                .iter()
                .find(|x| x.id == id)
                .map_or(id.to_string(), |x| x.name.clone()),
            _ => id.to_string(),
        }
    };
    let labels_of = |kind: &str, id: &str| -> String {
        let Some(source) = s.sources.iter().find(|x| kind == "SOURCE" && x.id == id) else {
            return String::new();
        };
        let mut l: Vec<String> = source
            .labels
            .iter()
            .map(|l| format!("{}:{}", l.key, l.value))
            .collect();
        l.sort();
        l.dedup();
        l.join(", ")
    };
    let mut out = BTreeSet::new();
    let mut add = |email: &str,
                   name: &str,
                   user_id: &str,
                   via: (&str, &str),
                   invite: bool,
                   p: &Permission| {
        let internal = email.to_ascii_lowercase().ends_with("@acme.io");
        for r in &p.resources {
            let kind = serde_json::to_value(r.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            let mut filter: Vec<(String, String)> = r
                .labels
                .iter()
                .chain(p.labels.iter())
                .flatten()
                .map(|l| (l.key.clone(), l.value.clone()))
                .collect();
            filter.sort();
            filter.dedup();
            let filter_text = filter
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut row = |kind: &str, id: &str, filter: &str| {
                out.insert(vec![
                    email.to_string(),
                    if internal { email } else { "External user" }.to_string(),
                    p.role_name.clone(),
                    if invite { "Invited" } else { "Active" }.to_string(),
                    "default".to_string(),
                    snapshot_id.to_string(),
                    email.to_string(),
                    name.to_string(),
                    user_id.to_string(),
                    if internal { "internal" } else { "external" }.to_string(),
                    p.role_id.clone(),
                    kind.to_string(),
                    id.to_string(),
                    name_of(kind, id),
                    labels_of(kind, id),
                    via.0.to_string(),
                    via.1.to_string(),
                    filter.to_string(),
                    format!("<={first_snapshot_at}"),
                    last_acting
                        .get(&email.to_ascii_lowercase())
                        .cloned()
                        .unwrap_or_default(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            };
            if kind == "WORKSPACE" && !filter.is_empty() {
                for source in &s.sources {
                    if source
                        .labels
                        .iter()
                        .any(|l| filter.contains(&(l.key.clone(), l.value.clone())))
                    {
                        row("SOURCE", &source.id, &filter_text);
                    }
                }
            } else {
                row(&kind, &r.id, "");
            }
        }
    };
    for u in &s.users {
        for p in &u.permissions {
            add(&u.email, &u.name, &u.id, ("direct", ""), false, p);
        }
    }
    for g in &s.groups {
        for p in &g.permissions {
            for member in &g.members {
                let u = s.users.iter().find(|u| &u.id == member).unwrap();
                add(&u.email, &u.name, &u.id, (&g.name, &g.id), false, p);
            }
            for email in &g.invites {
                add(email, "", "", (&g.name, &g.id), true, p);
            }
        }
    }
    out
}

/// The CSV's rows, header checked, times in one form.
fn csv_rows(text: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        COLUMNS
    );
    reader
        .records()
        .map(|r| {
            let mut row: Row = r.unwrap().iter().map(String::from).collect();
            row[19] = canonical_time(&row[19]);
            row
        })
        .collect()
}

fn write_config(dir: &Path) -> String {
    let path = dir.join("review.toml");
    std::fs::write(&path, "[access]\ninternal_domains = [\"acme.io\"]\n").unwrap();
    path.to_str().unwrap().to_string()
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(COLUMNS).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_export_equals_the_simulated_workspaces_grants() {
    let ws = TestWorkspace::start().await;
    // Audit events by workspace owners, so that some users were seen acting.
    let (user, other) = ws
        .sim
        .read(|s| (s.users[0].id.clone(), s.users[1].id.clone()));
    for (id, role) in [(&user, "Source Admin"), (&other, "Source Read-only")] {
        ws.sim
            .apply(Mutation::GrantRole {
                user_id: id.clone(),
                role_name: role.into(),
            })
            .unwrap();
    }
    ws.segwatch().args(["poll"]).success();
    let config = write_config(ws.dir.path());
    let state = ws.sim.read(|s| s.clone());
    let events = ws.sim.audit_events();

    let json = ws
        .segwatch()
        .args(["--config", &config, "access", "review", "--format", "json"])
        .success()
        .json();
    assert_eq!(json["snapshot_id"], 1);
    assert_eq!(json["workspace"], "default");
    let observed_at = json["observed_at"].as_str().unwrap().to_string();
    let expected = expected_rows(&state, &events, 1, &observed_at);
    assert!(expected.iter().any(|r| r[15] != "direct"), "group rows");
    assert!(expected.iter().any(|r| !r[17].is_empty()), "label filters");
    assert!(
        expected.iter().any(|r| r[9] == "external"),
        "external users"
    );
    assert!(expected.iter().any(|r| !r[19].is_empty()), "seen acting");
    assert_eq!(json["rows"].as_array().unwrap().len(), expected.len());
    let first = &json["rows"][0];
    for key in [
        "account_name",
        "account_owner",
        "role",
        "status",
        "granted_since",
    ] {
        assert!(first[key].is_string(), "{key} in {first}");
    }

    let csv = ws
        .segwatch()
        .args(["--config", &config, "access", "review", "--format", "csv"])
        .success()
        .stdout();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), expected.len(), "one row per grant, none merged");
    assert_eq!(rows.into_iter().collect::<BTreeSet<_>>(), expected);

    // Without [access] internal_domains, every account is `unknown` and owns itself.
    let csv = ws
        .segwatch()
        .args(["access", "review", "--at", &observed_at])
        .success()
        .stdout();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), expected.len(), "the same grants");
    assert!(rows.iter().all(|r| r[9] == "unknown" && r[1] == r[0]));

    // HTML to a file: self-contained, one table per subject.
    let out = ws.dir.path().join("review.html");
    ws.segwatch()
        .args(["access", "review", "--format", "html", "--output"])
        .args([&out])
        .success()
        .stdout_is(&format!(
            "{} grants of snapshot 1 to review written to {}\n",
            expected.len(),
            out.display()
        ));
    let html = std::fs::read_to_string(&out).unwrap();
    let subjects: BTreeSet<&str> = expected.iter().map(|r| r[6].as_str()).collect();
    assert_eq!(
        html.matches("<section class=\"subject\">").count(),
        subjects.len()
    );
    for remote in ["http://", "https://", "<script", "<link", "url("] {
        assert!(!html.contains(remote), "{remote}");
    }

    // Before the first poll: exit 1.
    ws.segwatch()
        .args(["access", "review", "--at", "2000-01-01"])
        .code(1)
        .stderr_has_line(&format!(
            "error: nothing was observed at or before 2000-01-01T00:00:00.000Z: the first complete snapshot of this workspace was observed at {observed_at}"
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_review_is_sealed_and_its_revocations_followed_up() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    let csv = ws.segwatch().args(["access", "review"]).success().stdout();
    let mut rows = csv_rows(&csv);
    // Revoke a direct grant of one user (the simulator will carry it out) and a group grant of
    // another (it will not); approve the rest.
    let carried = rows
        .iter()
        .position(|r| r[15] == "direct" && r[3] == "Active")
        .unwrap();
    let (carried_user, carried_role) = (rows[carried][8].clone(), rows[carried][2].clone());
    let kept = rows
        .iter()
        .position(|r| r[15] != "direct" && r[3] == "Active" && r[8] != carried_user)
        .unwrap();
    for (i, r) in rows.iter_mut().enumerate() {
        r[20] = if i == carried || i == kept {
            "Revoked"
        } else {
            "approve"
        }
        .into();
        r[23] = format!("line {}", i + 2);
    }
    rows[kept][21] = "dana@acme.io".into();
    let file = ws.dir.path().join("filled.csv");

    // An unknown decision: exit 1 naming file, line and column; nothing recorded.
    let mut bad = rows.clone();
    bad[2][20] = "keep".into();
    write_csv(&file, &bad);
    ws.segwatch()
        .args(["access", "review", "import"])
        .args([&file])
        .args(["--reviewer", "carol@acme.io"])
        .code(1)
        .stderr_has_line(&format!(
            "error: {}:4: column `decision` (column 21): unknown decision `keep`; expected approve, approved, revoke, revoked or empty (undecided)",
            file.display()
        ));
    // A decision without a reviewer.
    write_csv(&file, &rows);
    ws.segwatch()
        .args(["access", "review", "import"])
        .args([&file])
        .code(1)
        .stderr_has_line(&format!(
            "error: {}:2: column `reviewer` (column 22): a decision needs a reviewer: fill in the column or pass --reviewer NAME",
            file.display()
        ));
    // An edited grant column.
    let mut edited = rows.clone();
    edited[0][10] = "no-such-role".into();
    let other = ws.dir.path().join("edited.csv");
    write_csv(&other, &edited);
    ws.segwatch()
        .args(["access", "review", "import"])
        .args([&other])
        .args(["--reviewer", "carol@acme.io"])
        .code(1)
        .stderr_contains(&[&format!(
            "error: {}:2: no grant of snapshot 1 matches this line",
            other.display()
        )]);
    // A file without the decision column.
    let mut w = csv::Writer::from_path(&other).unwrap();
    w.write_record(&COLUMNS[..20]).unwrap();
    w.write_record(&rows[0][..20]).unwrap();
    w.flush().unwrap();
    drop(w);
    ws.segwatch()
        .args(["access", "review", "import"])
        .args([&other])
        .code(1)
        .stderr_contains(&[&format!(
            "error: {}:1: the header has no column `decision`: import a file written by `segwatch access review --format csv` (columns: Account name, Account owner, Role, Status, workspace,",
            other.display()
        )]);
    // No file argument: usage, exit 2.
    ws.segwatch().args(["access", "review", "import"]).code(2);
    let none: i64 = ws
        .store()
        .connection()
        .query_row("SELECT count(*) FROM access_reviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(none, 0);

    let n = rows.len();
    let run = ws
        .segwatch()
        .args(["access", "review", "import"])
        .args([&file])
        .args(["--reviewer", "carol@acme.io"])
        .success();
    let out = run.stdout();
    assert!(
        out.starts_with(&format!(
            "access review 1 recorded: {n} lines of snapshot 1 ({} approved, 2 revoked, 0 undecided) by carol@acme.io, dana@acme.io; sealed in the chain as ",
            n - 2
        )),
        "{out}"
    );
    ws.segwatch().args(["verify"]).success().stdout_contains(&[
        "chain intact: 1 snapshot, head ",
        "(access review 1, workspace `default`)",
    ]);

    // The simulator carries out one revocation; the next poll chains after the review.
    ws.sim
        .apply(Mutation::RevokeRole {
            user_id: carried_user.clone(),
            role_name: carried_role.clone(),
        })
        .unwrap();
    ws.segwatch().args(["poll"]).success();
    ws.segwatch().args(["verify"]).success().stdout_contains(&[
        "chain intact: 2 snapshots, head ",
        "(snapshot 2, workspace `default`)",
        "1 imported access review verified in the chain",
    ]);
    let follow = ws
        .segwatch()
        .args(["access", "review", "--follow-up", "--format", "json"])
        .success()
        .json();
    assert_eq!(follow["snapshot_id"], 2);
    assert_eq!(
        (
            follow["carried_out"].as_i64(),
            follow["not_carried_out"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let revocations = follow["revocations"].as_array().unwrap();
    let outcome = |r: &Row| {
        revocations
            .iter()
            .find(|x| {
                x["user_id"] == r[8].as_str()
                    && x["role_id"] == r[10].as_str()
                    && x["resource_id"] == r[12].as_str()
                    && x["via_group_id"] == r[16].as_str()
            })
            .unwrap_or_else(|| panic!("{r:?} in {revocations:?}"))
    };
    let done = outcome(&rows[carried]);
    assert_eq!(done["outcome"], "carried out");
    assert_eq!(done["reviewer"], "carol@acme.io");
    assert_eq!(done["comment"], format!("line {}", carried + 2));
    let not_done = outcome(&rows[kept]);
    assert_eq!(not_done["outcome"], "not carried out");
    assert_eq!(not_done["reviewer"], "dana@acme.io");
    assert_eq!(not_done["via"], rows[kept][15].as_str());
    // The same as CSV, and at the first snapshot neither was carried out yet.
    let csv = ws
        .segwatch()
        .args(["access", "review", "--follow-up"])
        .success()
        .stdout();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let outcomes: BTreeSet<String> = reader
        .records()
        .map(|r| r.unwrap()[15].to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["carried out", "not carried out"].map(String::from).into()
    );
    let html = ws
        .segwatch()
        .args(["access", "review", "--follow-up", "--format", "html"])
        .success()
        .stdout();
    assert!(html.contains("1 carried out, 1 not carried out"), "{html}");

    // A decision edited in the database: verify names the review.
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    conn.execute(
        "UPDATE access_review_decisions SET decision = 'approve' WHERE decision = 'revoke'",
        [],
    )
    .unwrap();
    drop(conn);
    ws.segwatch()
        .args(["verify"])
        .code(1)
        .stdout_contains(&["CHAIN BROKEN in workspace `default` at access review 1: access review 1 was altered after import: a decision row was edited\n"]);
}
