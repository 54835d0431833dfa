//! One writer per database: a second daemon or a `poll` while the daemon runs is refused (or
//! waits, bounded); two processes never migrate at once; readers need no lock, not even write
//! access to the directory; a killed writer's lock dies with it.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segwatch_core::ids::SnapshotId;
use segwatch_simulator::{Fault, FaultKind, Mutation};
use segwatch_store::{SnapshotStatus, Store};

use crate::util::{STARTER_RULES, TOKEN, TestWorkspace, WebhookReceiver, stop_daemon};

/// Every second: fast enough for tests, same code path as `*/15 * * * *`.
const EVERY_SECOND: &str = "* * * * * *";

/// Once a year: the daemon polls at start-up, then not again during a test.
const YEARLY: &str = "0 0 1 1 *";

/// The exit status of a command refused by the writer lock (documented in the README).
const LOCKED: i32 = 75;

fn complete(store: &Store) -> usize {
    store
        .snapshots(1, 1000)
        .unwrap_or_default()
        .iter()
        .filter(|s| s.status == SnapshotStatus::Complete)
        .count()
}

/// Waits for a process to exit, at most `bound`; returns its output.
fn exits_within(mut child: Child, bound: Duration) -> std::process::Output {
    let deadline = Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the process did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One integer the database answers, read without the lock.
fn count(ws: &TestWorkspace, sql: &str) -> i64 {
    Store::open_read_only(&ws.db())
        .unwrap()
        .connection()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Asserts that `stderr` is the refusal naming `pid` and the lock file.
fn assert_refusal(ws: &TestWorkspace, stderr: &str, pid: u32) {
    let lock = format!("{}.lock", ws.db().display());
    for needle in [
        &format!("pid {pid} on host "),
        &lock,
        &"in use by another segwatch writer".to_string(),
    ] {
        assert!(
            stderr.contains(needle.as_str()),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_is_refused_naming_the_first_which_stays_consistent() {
    let ws = TestWorkspace::start().await;
    let receiver = WebhookReceiver::start().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(&config, receiver.sink_toml()).unwrap();
    let daemon = || {
        ws.segwatch()
            .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
            .args(["--config", config.to_str().unwrap(), "run"])
    };
    let first = daemon().spawn();
    let first_pid = first.id();
    ws.wait_for_db("the first daemon's baseline", |s| complete(s) >= 1)
        .await;

    let second = daemon().spawn();
    let output = exits_within(second, Duration::from_secs(15));
    assert_eq!(output.status.code(), Some(LOCKED), "{output:?}");
    assert_refusal(&ws, &String::from_utf8_lossy(&output.stderr), first_pid);

    // The first one goes on: a change is found, alerted on and delivered once.
    let source = ws.sim.read(|s| s.sources[0].clone());
    ws.sim
        .apply(Mutation::SetSourceEnabled {
            source_id: source.id.clone(),
            enabled: !source.enabled,
        })
        .unwrap();
    let rule = if source.enabled {
        "source-disabled"
    } else {
        "source-reenabled"
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.alerts_of(rule).is_empty() {
        assert!(Instant::now() < deadline, "no {rule} alert was delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let polls = complete(&Store::open_read_only(&ws.db()).unwrap());
    ws.wait_for_db("two more polls", |s| complete(s) >= polls + 2)
        .await;
    let _ = stop_daemon(first);

    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'complete' AND error IS NOT NULL"
        ),
        0,
        "no complete snapshot carries an error"
    );
    // Nothing failed or was interrupted, except perhaps the poll the stop abandoned.
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots
             WHERE status != 'complete' AND id < (SELECT max(id) FROM snapshots)"
        ),
        0
    );
    // Every poll was the first daemon's: the second began none.
    assert_eq!(
        count(
            &ws,
            &format!("SELECT count(*) FROM snapshots WHERE poller_pid IS NOT {first_pid}")
        ),
        0
    );
    let events = receiver.events();
    let unique: HashSet<&String> = events.iter().collect();
    assert_eq!(
        unique.len(),
        events.len(),
        "a delivery was sent twice: {events:?}"
    );
    assert_eq!(receiver.alerts_of(rule).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_daemon_runs_writers_are_refused_or_wait_and_readers_work() {
    let ws = TestWorkspace::start().await;
    let daemon = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", YEARLY)
        .args(["run"])
        .spawn();
    let pid = daemon.id();
    ws.wait_for_db("the daemon's baseline", |s| complete(s) == 1)
        .await;

    // Refused at once: no --wait (the message says when it waited).
    let run = ws.segwatch().args(["poll"]).output();
    assert_eq!(run.output.status.code(), Some(LOCKED), "{}", run.stderr());
    assert_refusal(&ws, &run.stderr(), pid);
    assert!(!run.stderr().contains("after waiting"), "{}", run.stderr());

    // With --wait 2: the same refusal, after waiting.
    let started = Instant::now();
    let run = ws.segwatch().args(["poll", "--wait", "2"]).output();
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited");
    assert_eq!(run.output.status.code(), Some(LOCKED), "{}", run.stderr());
    assert_refusal(&ws, &run.stderr(), pid);
    assert!(
        run.stderr().contains("after waiting 2 s"),
        "{}",
        run.stderr()
    );

    // The other writers too.
    for args in [
        &["prune"][..],
        &["workspaces", "delete", "default", "--yes"],
    ] {
        let run = ws.segwatch().args(args).output();
        assert_eq!(
            run.output.status.code(),
            Some(LOCKED),
            "{args:?}: {}",
            run.stderr()
        );
        assert_refusal(&ws, &run.stderr(), pid);
    }
    // The wait is bounded.
    let run = ws.segwatch().args(["poll", "--wait", "3601"]).output();
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("3601"), "{}", run.stderr());

    // Readers take no lock.
    let rows = ws
        .segwatch()
        .args([
            "query",
            "SELECT count(*) AS n FROM audit_polls",
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(rows[0]["n"], 1, "{rows}");
    ws.segwatch()
        .args(["verify"])
        .success()
        .stdout_contains(&["intact"]);
    ws.segwatch()
        .args(["snapshots"])
        .success()
        .stdout_contains(&["complete"]);
    for args in [
        &["workspaces"][..],
        &["alerts"],
        &["changes", "--since", "2000-01-01T00:00:00Z"],
        &["report", "--format", "json"],
    ] {
        ws.segwatch().args(args).success();
    }

    // A poll waiting for the lock gets it when the daemon stops, and polls.
    let waiting = ws.segwatch().args(["poll", "--wait", "60"]).spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_daemon(daemon);
    let output = exits_within(waiting, Duration::from_secs(30));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'complete'"
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_polls_at_once_on_a_fresh_database_never_fail_on_migration() {
    // Without --wait: one polls, the other polls too (if the first was done) or is refused.
    let ws = TestWorkspace::start().await;
    let both = [
        ws.segwatch().args(["poll"]).spawn(),
        ws.segwatch().args(["poll"]).spawn(),
    ];
    let outputs: Vec<_> = both
        .into_iter()
        .map(|c| exits_within(c, Duration::from_secs(30)))
        .collect();
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("already exists"), "{stderr}");
        match output.status.code() {
            Some(0) => {}
            Some(LOCKED) => assert!(
                stderr.contains("in use by another segwatch writer"),
                "{stderr}"
            ),
            other => panic!("unexpected exit {other:?}: {stderr}"),
        }
    }
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert!(succeeded >= 1, "{outputs:?}");
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'complete'"
        ),
        succeeded as i64
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status != 'complete'"
        ),
        0
    );

    // With --wait: both poll, one after the other.
    let ws = TestWorkspace::start().await;
    let both = [
        ws.segwatch().args(["poll", "--wait", "30"]).spawn(),
        ws.segwatch().args(["poll", "--wait", "30"]).spawn(),
    ];
    for child in both {
        let output = exits_within(child, Duration::from_secs(60));
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM snapshots WHERE status = 'complete'"
        ),
        2
    );
    assert_eq!(
        count(&ws, "SELECT count(DISTINCT poller_pid) FROM snapshots"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_query_read_a_read_only_copy() {
    let ws = TestWorkspace::start().await;
    ws.segwatch().args(["poll"]).success();
    ws.segwatch().args(["poll"]).success();
    // The copy an auditor gets: the database file alone, read-only, in a read-only directory
    // where SQLite can create neither `-wal` nor `-shm`.
    let copy_dir = ws.dir.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    let copy = copy_dir.join("segwatch.db");
    std::fs::copy(ws.db(), &copy).unwrap();
    chmod(&copy, 0o444);
    chmod(&copy_dir, 0o555);
    // Root ignores permissions: drop to `nobody` so the test means the same everywhere.
    chmod(ws.dir.path(), 0o755);
    let read = |args: &[&str]| {
        let mut command = if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_segwatch"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_segwatch"))
        };
        command
            .env_clear()
            .env("SEGWATCH_DATABASE__PATH", &copy)
            .env("SEGWATCH_SEGMENT__TOKEN", TOKEN)
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .current_dir(&copy_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let verify = read(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("intact"),
        "{verify:?}"
    );
    let query = read(&[
        "query",
        "SELECT count(*) AS n FROM audit_polls",
        "--format",
        "json",
    ]);
    assert!(query.status.success(), "{query:?}");
    let rows: serde_json::Value = serde_json::from_slice(&query.stdout).unwrap();
    assert_eq!(rows[0]["n"], 2, "{rows}");
    for name in ["segwatch.db-wal", "segwatch.db-shm", "segwatch.db.lock"] {
        assert!(!copy_dir.join(name).exists(), "{name} was created");
    }

    // A copy that came with a `-wal` cannot be read from the main file alone: refused, naming
    // the `-wal`, rather than read without the data it holds.
    chmod(&copy_dir, 0o755);
    let wal = copy_dir.join("segwatch.db-wal");
    std::fs::write(&wal, b"").unwrap();
    chmod(&wal, 0o444);
    chmod(&copy_dir, 0o555);
    let refused = read(&["verify"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "{} may hold data not yet in the main file",
            wal.display()
        )),
        "{stderr}"
    );
    chmod(&copy_dir, 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writers_lock_file_does_not_block_the_next_and_its_poll_is_interrupted() {
    let ws = TestWorkspace::start().await;
    let mut killed = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    let killed_pid = killed.id();
    ws.wait_for_db("the first poll completed", |s| complete(s) == 1)
        .await;
    ws.sim
        .inject(Fault::new(FaultKind::Slow { delay_ms: 30_000 }).on_path("/sources"));
    ws.wait_until_mid_poll().await;
    killed.kill().unwrap(); // SIGKILL: no handler runs
    killed.wait().unwrap();
    // The lock file stays, naming the dead process; it is the lock that died.
    let lock = std::fs::read_to_string(format!("{}.lock", ws.db().display())).unwrap();
    assert!(lock.contains(&format!("pid={killed_pid}\n")), "{lock}");
    let running = count(
        &ws,
        "SELECT max(id) FROM snapshots WHERE status = 'running'",
    );
    assert_eq!(
        count(
            &ws,
            &format!("SELECT poller_pid FROM snapshots WHERE id = {running}")
        ),
        i64::from(killed_pid)
    );

    ws.sim.clear_faults();
    let next = ws
        .segwatch()
        .env("SEGWATCH_SCHEDULE__CRON", EVERY_SECOND)
        .args(["run"])
        .spawn();
    let next_pid = next.id();
    ws.wait_for_db("a poll of the next daemon", |s| complete(s) == 2)
        .await;
    let _ = stop_daemon(next);
    let store = Store::open_read_only(&ws.db()).unwrap();
    let killed_poll = store.snapshot(1, SnapshotId(running)).unwrap();
    assert_eq!(killed_poll.status, SnapshotStatus::Failed);
    assert!(
        killed_poll
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{killed_poll:?}"
    );
    assert_eq!(
        count(
            &ws,
            &format!(
                "SELECT count(*) FROM snapshots WHERE id > {running} AND poller_pid IS NOT {next_pid}"
            )
        ),
        0
    );
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
