//! The token and the sources' write keys never appear in clear: not in logs (at trace level, in
//! both formats), not in command output, not anywhere in the database files.

use segwatch_core::redact::fingerprint;
use segwatch_simulator::Mutation;

use crate::util::{TOKEN, TestWorkspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_output_or_database() {
    let ws = TestWorkspace::start().await;
    let keys_before: Vec<String> = ws.sim.read(|s| {
        s.sources
            .iter()
            .flat_map(|s| s.write_keys.clone())
            .collect()
    });
    let mut transcript = String::new();
    let mut record = |run: crate::util::Run| {
        transcript.push_str(&run.stdout());
        transcript.push_str(&run.stderr());
    };
    record(
        ws.segwatch()
            .env("RUST_LOG", "trace")
            .args(["poll"])
            .success(),
    );
    let source = ws.sim.read(|s| s.sources[0].id.clone());
    ws.sim
        .apply(Mutation::RotateWriteKey { source_id: source })
        .unwrap();
    record(
        ws.segwatch()
            .env("RUST_LOG", "trace")
            .args(["--log-format", "json", "poll", "--format", "json"])
            .success(),
    );
    record(
        ws.segwatch()
            .env("RUST_LOG", "trace")
            .args(["diff"])
            .success(),
    );
    record(ws.segwatch().args(["diff", "--format", "json"]).success());
    record(
        ws.segwatch()
            .args(["snapshots", "--format", "json"])
            .success(),
    );
    // A refused token must not be echoed either.
    record(
        ws.segwatch()
            .env("SEGWATCH_SEGMENT__TOKEN", "wrong-token-9d8c7b6a")
            .env("RUST_LOG", "trace")
            .args(["poll"])
            .code(1),
    );
    let keys_after: Vec<String> = ws.sim.read(|s| {
        s.sources
            .iter()
            .flat_map(|s| s.write_keys.clone())
            .collect()
    });

    let mut database = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            database.extend(bytes);
        }
    }
    let database = String::from_utf8_lossy(&database);

    // The scan looks at real data: the logs did trace HTTP, the database holds the sources.
    assert!(transcript.contains("/sources"), "trace logs were captured");
    assert!(
        database.contains(&fingerprint(&keys_before[0])),
        "the database holds source data"
    );
    assert!(
        transcript.contains("writeKeys"),
        "the diff output shows the rotation"
    );

    for secret in std::iter::once(TOKEN)
        .chain(["wrong-token-9d8c7b6a"])
        .chain(keys_before.iter().chain(&keys_after).map(String::as_str))
    {
        assert!(
            !transcript.contains(secret),
            "a secret leaked into output or logs"
        );
        assert!(
            !database.contains(secret),
            "a secret leaked into the database"
        );
    }
}
