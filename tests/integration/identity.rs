//! Identity hygiene end to end: the starter rule `user-not-seen-acting` (its shipped condition,
//! with 90 days shortened to seconds) on a simulated workspace whose audit trail shows one
//! user acting recently and one not; never a finding before the trail covers the window, nor
//! when the trail is not read; and `audit_effective_access` at the current time equal to
//! `EffectiveAccess` of the polled snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use segwatch::poll::{PollOutcome, Poller};
use segwatch_api::segment::SegmentClient;
use segwatch_core::access::{EffectiveAccess, Via};
use segwatch_core::alerts::AlertStatus;
use segwatch_core::model::Resource;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Mutation, Plan};
use segwatch_store::Store;

use crate::util::{STARTER_RULES, TestWorkspace};

const RULE: &str = "user-not-seen-acting";

/// The starter rule as shipped in rules/access.yaml, with its 90 days (`2160h`) replaced by
/// `window`.
fn inactivity_rule(window: &str) -> Arc<RuleSet> {
    let path = std::path::Path::new(STARTER_RULES).join("access.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find(&format!("- id: {RULE}\n"))
        .expect("the starter rule");
    let rest = &text[start..];
    let end = rest[1..].find("\n- id: ").map_or(rest.len(), |i| i + 2);
    let yaml = rest[..end].replace("duration(\"2160h\")", &format!("duration(\"{window}\")"));
    assert_eq!(yaml.matches(window).count(), 2, "{yaml}");
    Arc::new(RuleSet::from_yaml("access.yaml", &yaml).unwrap())
}

fn poller(ws: &TestWorkspace, rules: Arc<RuleSet>, lookback: Option<Duration>) -> Poller {
    let p = Poller::new(
        SegmentClient::new(ws.client_config()).unwrap(),
        SecretPolicy::default(),
        "default",
    )
    .with_rules(rules, false);
    match lookback {
        Some(lookback) => p.with_audit_trail(lookback),
        None => p,
    }
}

async fn poll(ws: &TestWorkspace, p: &Poller) -> PollOutcome {
    p.poll(&mut ws.store()).await.expect("the poll completes")
}

/// Users the poll opened an inactivity finding on (ids, sorted).
fn opened(outcome: &PollOutcome) -> BTreeSet<String> {
    outcome
        .alerts
        .iter()
        .filter(|a| a.rule_id == RULE && a.status == AlertStatus::Open)
        .map(|a| a.resource_id.clone())
        .collect()
}

/// Users with an open inactivity finding.
fn open_findings(mut store: Store) -> BTreeSet<String> {
    let ws = store.workspace_id("default").unwrap();
    store
        .open_findings(ws)
        .unwrap()
        .into_iter()
        .filter(|a| a.rule_id == RULE)
        .map(|a| a.resource_id)
        .collect()
}

fn user_ids(ws: &TestWorkspace) -> Vec<(String, String)> {
    ws.sim.read(|s| {
        s.users
            .iter()
            .map(|u| (u.id.clone(), u.email.clone()))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_users_are_flagged_only_once_the_trail_covers_the_window() {
    let ws = TestWorkspace::start().await;
    let users = user_ids(&ws);
    let (active, idle) = (users[0].0.clone(), users[1].0.clone());
    // "90 days" is 8 s here; the first read looks 4 s back.
    let p = poller(&ws, inactivity_rule("8s"), Some(Duration::from_secs(4)));

    let idle_acted = Instant::now();
    ws.sim
        .apply_as(
            &idle,
            Mutation::CreateToken {
                name: "idle's".into(),
            },
        )
        .unwrap();
    ws.sim
        .apply_as(
            &active,
            Mutation::CreateToken {
                name: "active's".into(),
            },
        )
        .unwrap();
    // The trail has been read for about 4 s: nobody has been silent for 8 s of it.
    let first = poll(&ws, &p).await;
    assert_eq!(first.audit_events, Some(2), "both actions read");
    assert_eq!(
        opened(&first),
        BTreeSet::new(),
        "the trail is too young to tell"
    );

    // 9.5 s after the idle user acted (the trail now covers more than 8 s), the active user
    // acts again.
    tokio::time::sleep(Duration::from_millis(9_500).saturating_sub(idle_acted.elapsed())).await;
    ws.sim
        .apply_as(
            &active,
            Mutation::CreateToken {
                name: "again".into(),
            },
        )
        .unwrap();
    let second = poll(&ws, &p).await;
    let flagged = opened(&second);
    let everyone_else: BTreeSet<String> = users
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| *id != active)
        .collect();
    assert!(flagged.contains(&idle), "the idle user acted 9.5 s ago");
    assert!(!flagged.contains(&active), "the active user acted just now");
    assert_eq!(
        flagged, everyone_else,
        "users never seen acting are flagged too"
    );
    let alert = second
        .alerts
        .iter()
        .find(|a| a.resource_id == idle)
        .unwrap();
    assert_eq!(
        alert.summary,
        format!(
            "{} has not been seen acting in the audit trail for more than 90 days",
            users[1].1
        )
    );

    // The auditor view agrees: the idle user's last action is the token it created.
    let store = ws.store();
    let (last, since): (Option<String>, Option<String>) = store
        .connection()
        .query_row(
            "SELECT last_acting_at, trail_read_since FROM audit_user_activity WHERE user_id = ?1",
            [&idle],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        last.is_some() && since.is_some() && since < last,
        "{since:?} {last:?}"
    );

    // Once the active user has been silent for 8 s too, they are flagged as well.
    tokio::time::sleep(Duration::from_millis(8_500)).await;
    let third = poll(&ws, &p).await;
    assert_eq!(opened(&third), BTreeSet::from([active.clone()]));
    // Acting again resolves the finding.
    ws.sim
        .apply_as(
            &active,
            Mutation::CreateToken {
                name: "back".into(),
            },
        )
        .unwrap();
    let fourth = poll(&ws, &p).await;
    assert_eq!(opened(&fourth), BTreeSet::new());
    let resolved: Vec<(&str, Option<&str>)> = fourth
        .alerts
        .iter()
        .filter(|a| a.rule_id == RULE)
        .map(|a| (a.resource_id.as_str(), a.resolution.as_deref()))
        .collect();
    assert_eq!(resolved, [(active.as_str(), Some("compliant"))]);
    assert!(!open_findings(ws.store()).contains(&active));
    assert!(open_findings(ws.store()).contains(&idle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_is_never_reported_when_the_trail_is_not_read() {
    // `[collect] audit_events = false`: the poller does not read the trail.
    let ws = TestWorkspace::start().await;
    let p = poller(&ws, inactivity_rule("1s"), None);
    poll(&ws, &p).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = poll(&ws, &p).await;
    assert_eq!(opened(&later), BTreeSet::new());
    assert_eq!(open_findings(ws.store()), BTreeSet::new());

    // A plan without the audit trail (403): the poll goes on, and reports no inactivity.
    let ws = TestWorkspace::start().await;
    ws.sim.set_plan(Plan::Team);
    let p = poller(&ws, inactivity_rule("1s"), Some(Duration::from_secs(1)));
    poll(&ws, &p).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = poll(&ws, &p).await;
    assert_eq!(later.audit_events, None);
    assert_eq!(opened(&later), BTreeSet::new());

    // The trail read, findings opened, then the plan loses the trail: what segwatch can no
    // longer see is neither reported again nor resolved.
    let ws = TestWorkspace::start().await;
    let p = poller(&ws, inactivity_rule("1s"), Some(Duration::from_secs(1)));
    poll(&ws, &p).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let flagged = opened(&poll(&ws, &p).await);
    assert_eq!(flagged.len(), user_ids(&ws).len());
    ws.sim.set_plan(Plan::Team);
    let blind = poll(&ws, &p).await;
    assert_eq!(blind.audit_events, None);
    assert_eq!(opened(&blind), BTreeSet::new());
    assert_eq!(
        open_findings(ws.store()),
        flagged,
        "kept open, not resolved"
    );
}

/// A grant as the view and `EffectiveAccess` both give it.
type Row = (
    String,
    String,
    bool,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_effective_access_view_now_equals_effective_access_of_the_latest_snapshot() {
    let ws = TestWorkspace::start().await;
    let p = poller(&ws, Arc::new(RuleSet::default()), None);
    poll(&ws, &p).await;
    // Access changes between polls: a relabelled source, a group member, a role.
    for _ in 0..20 {
        ws.sim.random_mutation();
    }
    poll(&ws, &p).await;

    let mut store = ws.store();
    let ws_id = store.workspace_id("default").unwrap();
    let snapshot = store.latest_complete(ws_id).unwrap().unwrap();
    let resources: Vec<Resource> = store
        .resources_at(ws_id, snapshot)
        .unwrap()
        .into_iter()
        .map(|r| Resource::new(r.kind, r.id, r.name, serde_json::from_str(&r.body).unwrap()))
        .collect();
    let want: BTreeSet<Row> = EffectiveAccess::compute(&resources)
        .grants()
        .map(|g| {
            let filter = (!g.label_filter.is_empty()).then(|| {
                serde_json::to_string(
                    &g.label_filter
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>(),
                )
                .unwrap()
            });
            let group = match g.via {
                Via::Direct => String::new(),
                Via::Group { id, .. } => id,
            };
            (
                g.user.id,
                g.user.email,
                g.invite,
                g.resource.kind,
                g.resource.id,
                g.role_id,
                g.role_name,
                group,
                filter,
            )
        })
        .collect();
    assert!(want.len() > 10, "{} grants", want.len());
    // The documented form: grants held now.
    let got: BTreeSet<Row> = store
        .connection()
        .prepare(
            "SELECT user_id, email, invite, resource_type, resource_id, role_id, role_name,
                    coalesce(via_group_id, ''), label_filter
             FROM audit_effective_access
             WHERE workspace = 'default' AND valid_to_at IS NULL",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, i64>(2)? == 1,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(got, want);
}

/// The shortened rule as a file a command can read.
fn rule_file(ws: &TestWorkspace, window: &str) -> std::path::PathBuf {
    let path = ws.dir.path().join("inactivity.yaml");
    let path_rules = std::path::Path::new(STARTER_RULES).join("access.yaml");
    let text = std::fs::read_to_string(path_rules).unwrap();
    let start = text.find(&format!("- id: {RULE}\n")).unwrap();
    let yaml = text[start..].replace("duration(\"2160h\")", &format!("duration(\"{window}\")"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Users `segwatch rules test` says the rule fires on (exit status 0).
fn dry_run(ws: &TestWorkspace, rules: &std::path::Path) -> BTreeSet<String> {
    let out = ws
        .segwatch()
        .args([
            "rules",
            "test",
            "--rules",
            rules.to_str().unwrap(),
            "--format",
            "json",
        ])
        .code(0)
        .json();
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == RULE)
        .map(|r| {
            assert_eq!(r["outcome"], "fires", "{r}");
            r["resource_id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_test_reads_the_stored_trail_and_reports_nothing_without_one() {
    let ws = TestWorkspace::start().await;
    let users = user_ids(&ws);
    let rules = rule_file(&ws, "5s");
    let p = poller(&ws, inactivity_rule("1h"), Some(Duration::from_secs(1)));
    let polled = Instant::now();
    poll(&ws, &p).await;
    // Right after the first read, the trail is too young for a 5 s window.
    assert_eq!(dry_run(&ws, &rules), BTreeSet::new());
    // 5.5 s later, the first user acts and a poll reads it: everyone else is flagged.
    tokio::time::sleep(Duration::from_millis(5_500).saturating_sub(polled.elapsed())).await;
    ws.sim
        .apply_as(&users[0].0, Mutation::CreateToken { name: "ci".into() })
        .unwrap();
    poll(&ws, &p).await;
    let others: BTreeSet<String> = users.iter().skip(1).map(|(id, _)| id.clone()).collect();
    assert_eq!(dry_run(&ws, &rules), others);

    // A database whose polls never read the trail: nothing, and exit status 0.
    let blind = TestWorkspace::start().await;
    let p = poller(&blind, inactivity_rule("1h"), None);
    poll(&blind, &p).await;
    let rules = rule_file(&blind, "1s");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(dry_run(&blind, &rules), BTreeSet::new());
}
