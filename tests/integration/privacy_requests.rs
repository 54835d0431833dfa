//! `segwatch privacy delete | status | requests` through the binary against the simulated
//! workspace's regulations: what Segment receives, what the database keeps (never the clear
//! user id), confirmation, and refusals.

use std::time::{Duration, Instant};

use segwatch_simulator::{Fault, FaultKind, SimConfig};

use crate::util::TestWorkspace;

/// A subject id distinctive enough that finding it in a file cannot be a coincidence.
const SUBJECT: &str = "user-erase-me-8c1f4b2a9d";

async fn workspace() -> TestWorkspace {
    TestWorkspace::with(SimConfig {
        regulation_step: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
}

/// Every file of the database (main file, -wal, -shm) as bytes.
fn database_bytes(ws: &TestWorkspace) -> Vec<(String, Vec<u8>)> {
    let name = ws.db().file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().starts_with(&name))
        .map(|e| {
            (
                e.file_name().to_str().unwrap().to_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_is_sent_recorded_hashed_and_followed_to_finished() {
    let ws = workspace().await;
    let run = ws
        .segwatch()
        .env("USER", "dpo-alice")
        .args(["privacy", "delete", "--user-id", SUBJECT, "--yes"])
        .args(["--requested-by", "ticket PRIV-1234"])
        .success();
    let regulation_id = run.stdout().trim().to_owned();

    // Segment received exactly one regulation, with the documented body.
    let sent = ws.sim.regulations();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, regulation_id);
    assert_eq!(sent[0].regulation_type, "SUPPRESS_WITH_DELETE");
    assert_eq!(sent[0].subject_type, "USER_ID");
    assert_eq!(sent[0].subject_ids, vec![SUBJECT.to_owned()]);

    // Recorded, with the subject as the salted HMAC only.
    {
        let store = ws.store();
        let conn = store.connection();
        let (regulation, kind, hash, os_user, by): (String, String, String, String, String) = conn
            .query_row(
                "SELECT regulation_id, regulation_type, subject_hash, requested_by_os_user,
                        requested_by
                 FROM audit_privacy_requests WHERE workspace = 'default'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            (regulation.as_str(), kind.as_str()),
            (regulation_id.as_str(), "SUPPRESS_WITH_DELETE")
        );
        assert_eq!(
            (os_user.as_str(), by.as_str()),
            ("dpo-alice", "ticket PRIV-1234")
        );
        assert_eq!(hash, store.subject_hash(SUBJECT).unwrap());
    }
    let files = database_bytes(&ws);
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, SUBJECT.as_bytes()),
            "{name} holds the clear subject id"
        );
    }

    // `status` follows it, and stores what it read, until it finishes.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let json = ws
            .segwatch()
            .args(["privacy", "status", &regulation_id, "--format", "json"])
            .success()
            .json();
        let line = &json["regulations"][0];
        assert_eq!(line["regulation_id"], regulation_id.as_str());
        assert_eq!(line["recorded"], true);
        let status = line["overall_status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "FINISHED" {
            let destinations = line["destinations"].as_array().unwrap();
            assert!(!destinations.is_empty());
            assert!(destinations.iter().all(|d| d["status"] == "FINISHED"));
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.iter()
            .all(|s| ["INITIALIZED", "RUNNING", "FINISHED"].contains(&s.as_str()))
    );
    assert!(seen.len() >= 2, "the status moved: {seen:?}");
    let stored: String = ws
        .store()
        .connection()
        .query_row(
            "SELECT overall_status FROM audit_privacy_requests",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "FINISHED");
    // Nothing is left to follow.
    ws.segwatch()
        .args(["privacy", "status"])
        .success()
        .stdout_contains(&["no unfinished regulation recorded"]);

    // The auditor's question: was a request made for this person? Only with their id.
    let found = ws
        .segwatch()
        .args([
            "privacy",
            "requests",
            "--subject",
            SUBJECT,
            "--format",
            "json",
        ])
        .success()
        .json();
    let requests = found["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["regulation_id"], regulation_id.as_str());
    assert_eq!(requests[0]["overall_status"], "FINISHED");
    assert_eq!(
        requests[0]["subject_hash_prefix"].as_str().unwrap().len(),
        12
    );
    ws.segwatch()
        .args(["privacy", "requests", "--subject", "someone-else"])
        .code(1)
        .stdout_contains(&["no request recorded for this subject"]);
    let table = ws.segwatch().args(["privacy", "requests"]).success();
    assert!(
        table.stdout().contains(&regulation_id),
        "{}",
        table.stdout()
    );
    assert!(!table.stdout().contains(SUBJECT));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_yes_and_without_a_terminal_nothing_is_sent() {
    let ws = workspace().await;
    ws.segwatch()
        .args(["privacy", "delete", "--user-id", SUBJECT])
        .code(1)
        .stderr_has_line("error: refusing to send a SUPPRESS_WITH_DELETE regulation without confirmation: there is no terminal to confirm on; pass --yes to confirm on the command line");
    assert!(ws.sim.regulations().is_empty());
    assert!(
        !ws.sim
            .request_log()
            .iter()
            .any(|r| r.starts_with("/regulations"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_type_is_refused_before_anything_is_sent() {
    let ws = workspace().await;
    ws.segwatch()
        .args(["privacy", "delete", "--user-id", SUBJECT, "--yes"])
        .args(["--type", "DELETE_EVERYTHING"])
        .code(2)
        .stderr_contains(&["DELETE_EVERYTHING", "SUPPRESS_WITH_DELETE"]);
    assert!(ws.sim.regulations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_regulation_is_reported_and_not_recorded() {
    let ws = workspace().await;
    ws.sim
        .inject(Fault::new(FaultKind::ClientError { status: 422 }).on_path("/regulations"));
    ws.segwatch()
        .args([
            "privacy",
            "delete",
            "--user-id",
            SUBJECT,
            "--yes",
            "--type",
            "DELETE_ONLY",
        ])
        .code(1)
        .stderr_has_line("error: Segment did not accept the regulation; nothing was recorded: POST /regulations: HTTP 422 ValidationFailure: Simulated client error");
    let recorded: i64 = ws
        .store()
        .connection()
        .query_row("SELECT count(*) FROM privacy_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_validates_regulations_like_segment() {
    // Slow steps: the status filters below must see the regulation still INITIALIZED.
    let ws = TestWorkspace::with(SimConfig {
        regulation_step: Duration::from_secs(600),
        ..SimConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{}/regulations", ws.sim.base_url()))
            .bearer_auth(crate::util::TOKEN)
            .json(&body)
            .send()
    };
    for bad in [
        serde_json::json!({"regulationType": "NOPE", "subjectType": "USER_ID", "subjectIds": ["u"]}),
        serde_json::json!({"regulationType": "DELETE_ONLY", "subjectType": "EMAIL", "subjectIds": ["u"]}),
        serde_json::json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": []}),
        serde_json::json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID"}),
    ] {
        let response = post(bad.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), 422, "{bad}");
    }
    assert!(ws.sim.regulations().is_empty());
    let created = post(serde_json::json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["u1"]}))
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let list: serde_json::Value = http
        .get(format!(
            "{}/regulations?pagination[count]=10",
            ws.sim.base_url()
        ))
        .bearer_auth(crate::util::TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"]["regulations"][0]["subjects"][0], "u1");
    assert_eq!(
        list["data"]["regulations"][0]["regulationType"],
        "DELETE_ONLY"
    );
    for (query, expected) in [
        ("regulationTypes=DELETE_ONLY", 1),
        ("regulationTypes=UNSUPPRESS", 0),
        ("status=FINISHED", 0),
        ("status=INITIALIZED", 1),
    ] {
        let list: serde_json::Value = http
            .get(format!(
                "{}/regulations?pagination[count]=10&{query}",
                ws.sim.base_url()
            ))
            .bearer_auth(crate::util::TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            list["data"]["regulations"].as_array().unwrap().len(),
            expected,
            "{query}"
        );
    }
    let unauthorized = http
        .get(format!("{}/regulations/reg_sim_000001", ws.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_regulation_that_cannot_be_recorded_is_shouted_not_lost() {
    let ws = workspace().await;
    // A database that refuses the row after Segment has accepted the regulation.
    ws.store()
        .connection()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON privacy_requests
             BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;",
        )
        .unwrap();
    let run = ws
        .segwatch()
        .args(["privacy", "delete", "--user-id", SUBJECT, "--yes"])
        .code(1)
        .stderr_contains(&[
            "Segment ACCEPTED regulation",
            "Keep this regulation id",
            "the disk says no",
        ]);
    let sent = ws.sim.regulations();
    assert_eq!(sent.len(), 1);
    assert_eq!(run.stdout().trim(), sent[0].id);
    assert!(run.stderr().contains(&sent[0].id));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_several_workspaces_the_request_goes_to_the_one_chosen() {
    let production = workspace().await;
    let staging = workspace().await;
    let config = production.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[workspaces]]\nname = \"production\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n\
             [[workspaces]]\nname = \"staging\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n",
            production.sim.base_url(),
            staging.sim.base_url()
        ),
    )
    .unwrap();
    let segwatch = || {
        crate::util::Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", production.db().to_str().unwrap())
            .env("TEST_TOKEN", crate::util::TOKEN)
            .args(["--config", config.to_str().unwrap()])
    };
    segwatch()
        .args(["privacy", "delete", "--user-id", SUBJECT, "--yes"])
        .code(1)
        .stderr_has_line("error: invalid configuration: `workspaces`: 2 workspaces are configured (production, staging); choose one with --workspace NAME");
    assert!(production.sim.regulations().is_empty() && staging.sim.regulations().is_empty());

    let id = segwatch()
        .args([
            "--workspace",
            "staging",
            "privacy",
            "delete",
            "--user-id",
            SUBJECT,
            "--yes",
        ])
        .success()
        .stdout()
        .trim()
        .to_owned();
    assert!(production.sim.regulations().is_empty());
    assert_eq!(staging.sim.regulations()[0].id, id);
    segwatch()
        .args([
            "--workspace",
            "staging",
            "privacy",
            "requests",
            "--subject",
            SUBJECT,
        ])
        .success()
        .stdout_contains(&[&id]);
    // Recorded under the chosen workspace.
    let store = production.store();
    let workspace: String = store
        .connection()
        .query_row("SELECT workspace FROM audit_privacy_requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(workspace, "staging");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_after_sending_is_not_retried_and_says_the_outcome_is_unknown() {
    let ws = workspace().await;
    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 503 }).on_path("/regulations"));
    ws.segwatch()
        .args(["privacy", "delete", "--user-id", SUBJECT, "--yes"])
        .code(1)
        .stderr_has_line("error: the outcome is unknown: Segment may have created the regulation. Nothing was recorded; check Segment's regulation list (GET /regulations, or the Privacy page) before sending it again: POST /regulations: HTTP 503 ServiceUnavailable: Simulated server error; the request may have reached Segment, so it was not sent again");
    // SEGWATCH_SEGMENT__MAX_ATTEMPTS is 3, yet the POST went out once.
    let posts = ws
        .sim
        .request_log()
        .iter()
        .filter(|r| r.as_str() == "/regulations")
        .count();
    assert_eq!(posts, 1);
    let recorded: i64 = ws
        .store()
        .connection()
        .query_row("SELECT count(*) FROM privacy_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, 0);
}
