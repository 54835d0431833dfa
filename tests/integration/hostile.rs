//! Hostile data and configurations: names that carry terminal escapes, bodies serde rejects,
//! plain-http webhooks, two labels for one workspace, an exposed health endpoint, empty rules.

use segwatch::simulator::{Mutation, SimConfig};
use segwatch::store::SnapshotStatus;

use crate::util::{STARTER_RULES, Segwatch, TOKEN, TestWorkspace};

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
    assert!(run.stdout().contains("[prod] snapshot 1 complete"), "{}", run.stdout());
    assert!(run.stdout().contains("[staging] snapshot 3 complete"), "{}", run.stdout());
    let refused = format!(
        "error: workspace `prod-again`: poll (snapshot 2) failed: workspaces `prod-again` and \
         `prod` both reach Segment workspace `{segment_id}`"
    );
    assert!(run.stderr().contains(&refused), "{}", run.stderr());
    assert!(run.stderr().contains("1 of 3 workspaces failed"), "{}", run.stderr());

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
        .failure();
    assert!(
        run.stderr().contains("`prod-again` and `prod` both reach"),
        "{}",
        run.stderr()
    );
}
