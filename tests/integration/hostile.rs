//! Hostile data and configurations: names that carry terminal escapes, bodies serde rejects,
//! plain-http webhooks, two labels for one workspace, an exposed health endpoint, empty rules.

use segwatch::simulator::Mutation;

use crate::util::TestWorkspace;

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
