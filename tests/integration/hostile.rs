//! Hostile data and configurations: names that carry terminal escapes, bodies serde rejects,
//! plain-http webhooks, two labels for one workspace, an exposed health endpoint, empty rules.

use segwatch_simulator::{Mutation, SimConfig};
use segwatch_store::SnapshotStatus;

use crate::util::{STARTER_RULES, Segwatch, TOKEN, TestWorkspace, free_port};

/// A name with an ANSI colour sequence and a right-to-left override, as a hostile workspace
/// member could type it into Segment.
const HOSTILE_NAME: &str = "Forwarder\u{1b}[31m\u{202e}gpj.exe";

/// Human output shows the name escaped (`\u{1b}`, `\u{202e}`), never the raw characters.
fn assert_escaped(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{what} writes raw escapes: {text:?}"
    );
    assert!(
        text.contains(r"Forwarder\u{1b}[31m\u{202e}gpj.exe"),
        "{what} does not show the name escaped: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_terminal_escapes_are_escaped_in_human_output_and_exact_in_json() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    ws.sim
        .apply(Mutation::AddFunction {
            display_name: HOSTILE_NAME.into(),
            resource_type: "DESTINATION".into(),
        })
        .unwrap();

    let poll = ws.segwatch().args(["poll"]).success();
    assert_escaped("poll", &poll.stdout());
    assert!(poll.stdout().contains("ALERT [MEDIUM] function-deployed"));

    for args in [
        &["alerts"][..],
        &["changes", "--since", "2000-01-01T00:00:00Z"][..],
    ] {
        assert_escaped(args[0], &ws.segwatch().args(args).success().stdout());
    }

    let json = ws
        .segwatch()
        .args(["alerts", "--format", "json"])
        .success()
        .json();
    let summaries: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["summary"].as_str())
        .collect();
    assert!(
        summaries.iter().any(|s| s.contains(HOSTILE_NAME)),
        "JSON keeps the name exact: {summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_labels_for_one_segment_workspace_are_refused_and_the_others_poll() {
    let shared = TestWorkspace::start().await;
    let other = TestWorkspace::with(SimConfig {
        seed: 11,
        ..SimConfig::default()
    })
    .await;
    let config = shared.dir.path().join("segwatch.toml");
    let entry = |name: &str, ws: &TestWorkspace| {
        format!(
            "[[workspaces]]\nname = \"{name}\"\napi_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n",
            ws.sim.base_url()
        )
    };
    std::fs::write(
        &config,
        [
            entry("prod", &shared),
            entry("prod-again", &shared),
            entry("staging", &other),
        ]
        .concat(),
    )
    .unwrap();
    let segwatch = || {
        Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", shared.db().to_str().unwrap())
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .env("TEST_TOKEN", TOKEN)
            .args(["--config", config.to_str().unwrap()])
            .current_dir(shared.dir.path())
    };
    let segment_id = shared.sim.read(|s| s.workspace.id.clone());

    let run = segwatch().args(["poll"]).output();
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    // The first label records the workspace; the second is refused naming both; the third polls.
    assert!(
        run.stdout().contains("[prod] snapshot 1 complete"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("[staging] snapshot 3 complete"),
        "{}",
        run.stdout()
    );
    let refused = format!(
        "error: workspace `prod-again`: poll (snapshot 2) failed: workspaces `prod-again` and \
         `prod` both reach Segment workspace `{segment_id}`"
    );
    assert!(run.stderr().contains(&refused), "{}", run.stderr());
    assert!(
        run.stderr().contains("1 of 3 workspaces failed"),
        "{}",
        run.stderr()
    );

    // Recorded as a failed poll, with nothing of it stored as resources.
    let mut store = shared.store();
    let again = store.workspace_id("prod-again").unwrap();
    let snapshots = store.snapshots(again, 10).unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].status, SnapshotStatus::Failed);
    assert!(
        snapshots[0].error.as_deref().unwrap().contains("`prod`"),
        "{snapshots:?}"
    );

    // Polled alone, it is still refused: the check does not depend on the order.
    let run = segwatch()
        .args(["--workspace", "prod-again", "poll"])
        .code(1);
    assert!(
        run.stderr().contains("`prod-again` and `prod` both reach"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_endpoint_beyond_loopback_warns_and_requires_its_token() {
    const HEALTH_TOKEN: &str = "health-token-93c1e0";
    let ws = TestWorkspace::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!("[health]\nlisten = \"0.0.0.0:{port}\"\ntoken_env = \"HEALTH_TOKEN\"\n"),
    )
    .unwrap();
    let child = ws
        .segwatch()
        .env("HEALTH_TOKEN", HEALTH_TOKEN)
        .args(["--config", config.to_str().unwrap(), "run"])
        .spawn();
    ws.wait_for_db("the first poll completed", |s| {
        s.snapshots(1, 1).is_ok_and(|l| {
            l.first()
                .is_some_and(|s| s.status == SnapshotStatus::Complete)
        })
    })
    .await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/metrics"] {
        let url = format!("http://127.0.0.1:{port}{path}");
        let bare = http.get(&url).send().await.unwrap();
        assert_eq!(bare.status(), 401, "{path} without a token");
        let wrong = http.get(&url).bearer_auth("not-it").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let right = http
            .get(&url)
            .bearer_auth(HEALTH_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path} with the token");
        if path == "/metrics" {
            assert!(right.text().await.unwrap().contains("segwatch_"));
        }
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("/healthz and /metrics listen beyond this host over plain HTTP"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(HEALTH_TOKEN),
        "the token is logged: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_endpoint_beyond_loopback_without_a_token_warns() {
    let ws = TestWorkspace::start().await;
    let port = free_port();
    let child = ws
        .segwatch()
        .env("SEGWATCH_HEALTH__LISTEN", &format!("0.0.0.0:{port}"))
        .args(["run"])
        .spawn();
    ws.wait_for_db("the first poll completed", |s| {
        s.snapshots(1, 1).is_ok_and(|l| {
            l.first()
                .is_some_and(|s| s.status == SnapshotStatus::Complete)
        })
    })
    .await;
    let open = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listen beyond this host without a token")
            && stderr.contains("[health] token_file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_rules_folder_is_warned_about() {
    let ws = TestWorkspace::start().await;
    let empty = ws.dir.path().join("no-rules-yet");
    std::fs::create_dir(&empty).unwrap();
    let warning = format!("no rule in {}", empty.display());
    let run = ws
        .segwatch()
        .env("SEGWATCH_RULES__PATH", empty.to_str().unwrap())
        .args(["poll"])
        .success();
    assert!(run.stderr().contains(&warning), "{}", run.stderr());
    assert!(run.stderr().contains("raise no alert"), "{}", run.stderr());
    assert!(
        run.stdout().contains("snapshot 1 complete"),
        "{}",
        run.stdout()
    );
    // `rules validate` says so too, and still succeeds.
    ws.segwatch()
        .args(["rules", "validate", empty.to_str().unwrap()])
        .success()
        .stdout_contains(&["0 rules", &warning]);
    // The starter pack: no warning.
    let run = ws.segwatch().args(["poll"]).success();
    assert!(!run.stderr().contains("no rule in"), "{}", run.stderr());
}
