//! Segment's audit trail: read incrementally, stored once, and used to say who made each change,
//! from the simulated workspace's mutations to the alerts a webhook receives.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use segwatch::poll::{PollError, PollOutcome, Poller};
use segwatch_api::segment::SegmentClient;
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Fault, FaultKind, Mutation};
use segwatch_store::Store;
use serde_json::Value;

use crate::util::{STARTER_RULES, TOKEN, TestWorkspace, WebhookReceiver};

/// A poller as `segwatch poll` builds it: the starter rules, a webhook sink, the audit trail.
fn poller(ws: &TestWorkspace, receiver: &WebhookReceiver) -> Poller {
    let rules = Arc::new(RuleSet::load(std::path::Path::new(STARTER_RULES)).unwrap());
    Poller::new(
        SegmentClient::new(ws.client_config()).unwrap(),
        SecretPolicy::default(),
        "default",
    )
    .with_rules(rules, false)
    .with_sinks(Arc::new(vec![receiver.sink(100)]))
    .with_audit_trail(Duration::from_secs(24 * 3600))
}

async fn poll(ws: &TestWorkspace, p: &Poller) -> Result<PollOutcome, PollError> {
    let mut store = ws.store();
    // As `segwatch poll` does: the poll, then what it queued is delivered.
    let mut outcome = p.poll(&mut store).await?;
    outcome.deliveries = p.deliver_queued(&mut store).await?;
    Ok(outcome)
}

fn count(store: &Store, sql: &str) -> i64 {
    store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The `startTime` of each `GET /audit-events` the simulator received, in order.
fn audit_reads(ws: &TestWorkspace) -> Vec<DateTime<Utc>> {
    ws.sim
        .request_log()
        .iter()
        .filter(|r| r.starts_with("/audit-events?"))
        .map(|r| {
            let query = r.split_once('?').unwrap().1;
            let start = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("startTime="))
                .unwrap_or_else(|| panic!("no startTime in {r}"));
            percent_decoded(start).parse().unwrap()
        })
        .collect()
}

/// `%XX` escapes decoded (timestamps in a query: `%3A` for `:`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The mark the latest complete poll left.
fn mark(ws: &TestWorkspace) -> DateTime<Utc> {
    let store = ws.store();
    let at: String = store
        .connection()
        .query_row(
            "SELECT mark_at FROM audit_reads ORDER BY snapshot_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    at.parse().unwrap()
}

/// Who the simulator's trail says made the latest change to `resource_id`: (actor, email as
/// segwatch should report it).
fn author(ws: &TestWorkspace, resource_id: &str) -> (String, Option<String>) {
    let event = ws
        .sim
        .audit_events()
        .into_iter()
        .rev()
        .find(|e| e.resource_id == resource_id)
        .expect("the mutation left an event");
    let email = event.actor_email.clone().or_else(|| {
        ws.sim
            .read(|s| s.user(&event.actor).map(|u| u.email.clone()))
    });
    (event.actor, email)
}

#[tokio::test]
async fn changes_name_their_actor_and_events_are_stored_once() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let p = poller(&ws, &receiver);
    let baseline = poll(&ws, &p).await.unwrap();
    assert_eq!(baseline.audit_events, Some(0));

    let (user, source) = ws.sim.read(|s| {
        let ws_id = s.workspace.id.clone();
        let user = s
            .users
            .iter()
            .find(|u| {
                !u.permissions
                    .iter()
                    .any(|p| p.role_name == "Workspace Owner" && p.is_workspace_wide(&ws_id))
            })
            .unwrap()
            .clone();
        (user, s.sources[0].clone())
    });
    ws.sim
        .apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    ws.sim
        .apply_unaudited(Mutation::RotateWriteKey {
            source_id: source.id.clone(),
        })
        .unwrap();
    ws.sim
        .apply(Mutation::CreateToken {
            name: "nightly export".into(),
        })
        .unwrap();
    let (actor, email) = author(&ws, &user.id);

    let outcome = poll(&ws, &p).await.unwrap();
    assert_eq!(outcome.audit_events, Some(2), "the grant and the token");
    let change = |id: &str| {
        outcome
            .changes
            .iter()
            .find(|c| c.resource_id == id)
            .unwrap_or_else(|| panic!("no change of {id}: {:?}", outcome.changes))
    };
    let granted = &change(&user.id).attribution;
    assert_eq!(granted.actor.as_deref(), Some(actor.as_str()));
    assert_eq!(granted.actor_email, email);
    assert_eq!(granted.event_type.as_deref(), Some("User Policy Updated"));
    assert!(
        !change(&source.id).attribution.is_known(),
        "nothing in the trail names the rotation"
    );

    // The alerts, as a webhook receiver got them.
    let owner = receiver.alerts_of("workspace-owner-granted");
    assert_eq!(owner.len(), 1, "{owner:?}");
    assert_eq!(owner[0].1["actor"], actor.as_str());
    assert_eq!(
        owner[0].1["actor_email"],
        email.clone().map_or(Value::Null, Value::from)
    );
    assert_eq!(owner[0].1["event_type"], "User Policy Updated");
    let rotated = receiver.alerts_of("source-write-key-rotated");
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].1["actor"], Value::Null);
    let token = receiver.alerts_of("audit-access-token-created");
    assert_eq!(token.len(), 1, "the dangerous event raised its alert");
    assert_eq!(token[0].1["resource_kind"], "audit_event");
    assert_eq!(token[0].1["resource_name"], "nightly export");
    assert!(
        token[0].1["event_id"]
            .as_str()
            .unwrap()
            .starts_with("events/")
    );

    // Stored once, in the views auditors read, with the change's attribution.
    let store = ws.store();
    assert_eq!(count(&store, "SELECT count(*) FROM audit_events_log"), 2);
    let who: (Option<String>, Option<String>) = store
        .connection()
        .query_row(
            "SELECT actor, event_type FROM audit_changes WHERE resource_id = ?1",
            [&user.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        who,
        (Some(actor.clone()), Some("User Policy Updated".into()))
    );
    drop(store);

    // Polling again re-reads from the mark: nothing is stored or raised twice.
    let mark_after_second = mark(&ws);
    let quiet = poll(&ws, &p).await.unwrap();
    assert!(quiet.changes.is_empty());
    assert_eq!(quiet.audit_events, Some(0));
    assert!(quiet.alerts.is_empty(), "{:?}", quiet.alerts);
    let store = ws.store();
    assert_eq!(count(&store, "SELECT count(*) FROM audit_events"), 2);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM alerts WHERE rule_id = 'audit-access-token-created'"
        ),
        1
    );
    let starts = audit_reads(&ws);
    assert_eq!(starts.len(), 3, "one read per poll");
    assert!(
        starts[2] >= mark_after_second,
        "{starts:?} vs {mark_after_second}"
    );
    assert!(starts[1] < starts[2]);

    // Events name tokens by id; the bearer token is nowhere in the database or the alerts.
    drop(store);
    let bytes = std::fs::read(ws.db()).unwrap();
    let wal = std::fs::read(ws.db().with_extension("db-wal")).unwrap_or_default();
    for haystack in [&bytes, &wal] {
        assert!(!haystack.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    }
    for (_, body) in receiver.accepted.lock().unwrap().iter() {
        assert!(!body.to_string().contains(TOKEN));
    }
}

#[tokio::test]
async fn a_failed_poll_loses_no_audit_event() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let p = poller(&ws, &receiver);
    poll(&ws, &p).await.unwrap();
    let first_mark = mark(&ws);

    let group = ws.sim.read(|s| s.groups[0].clone());
    let newcomer = ws.sim.read(|s| {
        s.users
            .iter()
            .find(|u| !group.members.contains(&u.id))
            .unwrap()
            .id
            .clone()
    });
    ws.sim
        .apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: newcomer,
        })
        .unwrap();
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 503 }).on_path("/audit-events"));
    let err = poll(&ws, &p).await.unwrap_err();
    assert!(matches!(err, PollError::Trail { .. }), "{err}");
    assert!(err.to_string().contains("audit trail"), "{err}");
    {
        let store = ws.store();
        assert_eq!(count(&store, "SELECT count(*) FROM audit_events"), 0);
        assert_eq!(count(&store, "SELECT count(*) FROM changes"), 0);
        assert_eq!(count(&store, "SELECT count(*) FROM audit_reads"), 1);
    }

    ws.sim.clear_faults();
    let outcome = poll(&ws, &p).await.unwrap();
    assert_eq!(outcome.audit_events, Some(1));
    let (actor, _) = author(&ws, &group.id);
    let change = outcome
        .changes
        .iter()
        .find(|c| c.resource_id == group.id)
        .unwrap();
    assert_eq!(change.attribution.actor.as_deref(), Some(actor.as_str()));
    assert_eq!(
        change.attribution.event_type.as_deref(),
        Some("Group Memberships Created")
    );
    // Every read after the first starts at the last complete poll's mark, the failed one too.
    let starts = audit_reads(&ws);
    assert!(starts.len() >= 3, "{starts:?}");
    assert_eq!(starts[1], first_mark);
    assert_eq!(*starts.last().unwrap(), first_mark);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_without_the_audit_trail_is_still_watched() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let p = poller(&ws, &receiver);
    // The plan has no audit trail: Segment refuses the endpoint, not the token.
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 403 }).on_path("/audit-events"));
    poll(&ws, &p).await.unwrap();
    let source = ws.sim.read(|s| s.sources[0].clone());
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    let outcome = poll(&ws, &p).await.unwrap();
    let change = outcome
        .changes
        .iter()
        .find(|c| c.resource_id == source.id)
        .unwrap();
    assert!(!change.attribution.is_known(), "{change:?}");
    assert_eq!(outcome.audit_events, None);
    {
        let store = ws.store();
        assert_eq!(count(&store, "SELECT count(*) FROM audit_events"), 0);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM snapshots WHERE status = 'complete'"
            ),
            2
        );
    }
    // A server error is another matter: the poll fails, so no event is lost.
    ws.sim.clear_faults();
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 500 }).on_path("/audit-events"));
    assert!(matches!(
        poll(&ws, &p).await.unwrap_err(),
        PollError::Trail { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_names_the_actor_in_its_output_and_alerts() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(&config, receiver.sink_toml()).unwrap();
    let segwatch = || {
        ws.segwatch().args([
            "--config",
            config.to_str().unwrap(),
            "poll",
            "--format",
            "json",
        ])
    };
    segwatch().success();

    let (owner, removed) = ws.sim.read(|s| {
        let ws_id = s.workspace.id.clone();
        let holds = |u: &&segwatch_simulator::User| {
            u.permissions
                .iter()
                .any(|p| p.role_name == "Workspace Owner" && p.is_workspace_wide(&ws_id))
        };
        let owner = s.users.iter().find(holds).unwrap().clone();
        let other = s.users.iter().find(|u| !holds(u)).unwrap().clone();
        (owner, other)
    });
    ws.sim
        .apply(Mutation::RevokeRole {
            user_id: owner.id.clone(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    ws.sim
        .apply_unaudited(Mutation::RemoveUser {
            user_id: removed.id.clone(),
        })
        .unwrap();
    ws.sim.apply(Mutation::UpdateSsoSettings).unwrap();
    let (actor, email) = author(&ws, &owner.id);

    // JSON lines: the poll, then each alert it raised.
    let stdout = segwatch().success().stdout();
    let out: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let changes = out["changes"].as_array().unwrap();
    let of = |id: &str| changes.iter().find(|c| c["resource_id"] == id).unwrap();
    assert_eq!(of(&owner.id)["actor"], actor.as_str());
    assert_eq!(of(&owner.id)["event_type"], "User Policy Updated");
    assert_eq!(of(&removed.id)["actor"], Value::Null);
    assert_eq!(out["audit_events"], 2);

    let revoked = receiver.alerts_of("workspace-owner-revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1["actor"], actor.as_str());
    assert_eq!(
        revoked[0].1["actor_email"],
        email.map_or(Value::Null, Value::from)
    );
    let gone = receiver.alerts_of("user-removed");
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].1["actor"], Value::Null, "actor unknown");
    assert_eq!(receiver.alerts_of("audit-sso-settings-changed").len(), 1);

    // The text output names the actor beside the change.
    let text = ws
        .segwatch()
        .args(["--config", config.to_str().unwrap(), "diff"])
        .success()
        .stdout();
    assert!(text.contains("(User Policy Updated)"), "{text}");

    // With the audit trail off, the API is not asked for it.
    let before = ws.sim.request_log().len();
    ws.segwatch()
        .env("SEGWATCH_COLLECT__AUDIT_EVENTS", "false")
        .args(["--config", config.to_str().unwrap(), "poll"])
        .success();
    let log = ws.sim.request_log();
    assert!(
        log[before..]
            .iter()
            .all(|r| !r.starts_with("/audit-events"))
    );
}
