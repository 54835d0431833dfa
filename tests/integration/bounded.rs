//! Bounded reads: a response body that never ends or crawls, and a secret file that never ends,
//! meet a limit instead of growing memory or hanging (README "Limits and failure behaviour").

use std::process::Child;
use std::time::{Duration, Instant};

use segwatch_simulator::{Fault, FaultKind, SimConfig};
use segwatch_store::SnapshotStatus;

use crate::util::{Run, Segwatch, TOKEN, TestWorkspace};

/// Peak resident memory allowed to a `segwatch poll` that meets an endless body.
const MAX_PEAK_RSS_KIB: u64 = 512 * 1024;

/// How long a child may run before it is killed and the test fails: far above what these runs
/// take, only so a regression (a hang) fails instead of blocking the suite.
const HANG: Duration = Duration::from_secs(120);

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Waits for `child`, sampling its peak RSS until it exits; returns its output and the
/// largest peak seen. A zombie has no memory figures, so sampling stops at exit; `VmHWM` is
/// a high-water mark, so the last sample holds everything before it.
fn wait_sampling_rss(mut child: Child) -> (Run, Option<u64>) {
    let pid = child.id();
    let deadline = Instant::now() + HANG;
    let mut peak = None;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(Some(kib));
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("segwatch did not finish within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    (Run { output }, peak)
}

/// Runs to the end (killed and failed after [`HANG`]).
fn run_bounded(segwatch: Segwatch) -> Run {
    wait_sampling_rss(segwatch.spawn()).0
}

fn latest_status(ws: &TestWorkspace) -> (SnapshotStatus, String) {
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let latest = &store.snapshots(workspace, 1).unwrap()[0];
    (latest.status, latest.error.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_fails_the_poll_at_the_default_limit_in_bounded_memory() {
    let ws = TestWorkspace::start().await;
    ws.sim
        .inject(Fault::new(FaultKind::EndlessBody).on_path("/users"));
    let started = ws.sim.request_count();
    // The default limit (64 MiB): the real binary with its real defaults.
    let child = ws.segwatch().args(["poll"]).spawn();
    let (run, peak) = wait_sampling_rss(child);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("GET /users")
            && stderr.contains("64 MiB (67108864 bytes)")
            && stderr.contains("max_response_bytes"),
        "{stderr}"
    );
    let peak = peak.expect("the child's peak RSS was sampled");
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "peak RSS {peak} KiB, limit {MAX_PEAK_RSS_KIB} KiB"
    );
    // Not retried: one `/users` request (the endless one) and nothing after it.
    let users: Vec<String> = ws
        .sim
        .request_log()
        .into_iter()
        .filter(|p| p.starts_with("/users"))
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(ws.sim.request_count() > started);
    // The poll is recorded failed, with the cause.
    let (status, error) = latest_status(&ws);
    assert_eq!(status, SnapshotStatus::Failed);
    assert!(
        error.contains("/users") && error.contains("max_response_bytes"),
        "{error}"
    );

    // The limit is a setting: a small one fails the same way at its own size.
    let run = run_bounded(
        ws.segwatch()
            .env("SEGWATCH_SEGMENT__MAX_RESPONSE_BYTES", "1048576")
            .args(["poll"]),
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("1 MiB (1048576 bytes)"),
        "{}",
        run.stderr()
    );

    // Once the endpoint behaves, the next poll completes.
    ws.sim.clear_faults();
    ws.segwatch().args(["poll"]).success();
    assert_eq!(latest_status(&ws).0, SnapshotStatus::Complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_fails_the_poll_within_the_request_timeout() {
    let ws = TestWorkspace::start().await;
    // How long the trickle would take: the true `/users` page, one byte every 50 ms.
    let body = reqwest::Client::new()
        .get(format!(
            "{}/users?pagination%5Bcount%5D=200",
            ws.sim.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let interval = Duration::from_millis(50);
    let trickle_takes = interval * body.len() as u32;
    ws.sim.inject(
        Fault::new(FaultKind::Trickle {
            interval_ms: interval.as_millis() as u64,
        })
        .on_path("/users"),
    );

    let users_requests = |ws: &TestWorkspace| {
        ws.sim
            .request_log()
            .into_iter()
            .filter(|p| p.starts_with("/users"))
            .count()
    };
    let before = users_requests(&ws);

    let timeout = Duration::from_secs(1);
    let attempts = 2;
    let started = Instant::now();
    let run = run_bounded(
        ws.segwatch()
            .env("SEGWATCH_SEGMENT__REQUEST_TIMEOUT_SECS", "1")
            .env("SEGWATCH_SEGMENT__MAX_ATTEMPTS", &attempts.to_string())
            .args(["poll"]),
    );
    let elapsed = started.elapsed();
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("GET /users")
            && stderr.contains("after 2 attempts")
            && stderr.contains("timed out after 1s"),
        "{stderr}"
    );
    // Each attempt is cut at the timeout. The bound is generous (3x the attempts' timeouts, plus
    // the at most 30 s backoff between them would be far more): what matters is that it is far
    // below the trickle's own length.
    let bound = timeout * attempts * 3 + Duration::from_secs(2);
    assert!(
        trickle_takes > bound * 5,
        "the trickle ({trickle_takes:?}) must outlast the bound ({bound:?}) by far"
    );
    assert!(elapsed < bound, "took {elapsed:?}, bound {bound:?}");
    assert_eq!(
        users_requests(&ws) - before,
        attempts as usize,
        "a trickle is retried like a timeout"
    );
    assert_eq!(latest_status(&ws).0, SnapshotStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_that_never_ends_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_bounded(
        Segwatch::new()
            .current_dir(dir.path())
            .env("SEGWATCH_SEGMENT__TOKEN_FILE", "/dev/zero")
            .args(["poll"]),
    );
    // Exit 1, as every other configuration error.
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("`segment.token_file`")
            && stderr.contains("/dev/zero")
            && stderr.contains("64 KiB (65536 bytes)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_profile_api_body_fails_the_access_request_at_its_limit() {
    const SECRET: &str = "sgw-profiles-secret-bounded-2c4e";
    const SPACE: &str = "spa_bounded";
    let ws = TestWorkspace::with(SimConfig {
        profiles_space: SPACE.into(),
        profiles_secret: SECRET.to_owned().into(),
        ..SimConfig::default()
    })
    .await;
    let user = ws.sim.read(|s| s.users[0].id.clone());
    ws.sim.inject(
        Fault::new(FaultKind::EndlessBody)
            .on_path("/v1/spaces")
            .times(1),
    );
    let out = ws.dir.path().join("export.json");
    let run = run_bounded(
        ws.segwatch()
            .env("SEGWATCH_PROFILES__API_URL", &ws.sim.base_url())
            .env("SEGWATCH_PROFILES__SPACE_ID", SPACE)
            .env("SEGWATCH_PROFILES__ACCESS_SECRET", SECRET)
            .env("SEGWATCH_PROFILES__MAX_RESPONSE_BYTES", "2097152")
            .args(["privacy", "access", "--user-id", &user, "--out"])
            .args([&out]),
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("2 MiB (2097152 bytes)")
            && stderr.contains("`profiles.max_response_bytes`"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
    assert!(!out.exists(), "no partial export is written");
    // Not retried: the one faulty response was the only metadata request.
    let metadata = ws
        .sim
        .request_log()
        .into_iter()
        .filter(|p| p.starts_with("/v1/spaces") && p.contains("/metadata"))
        .count();
    assert_eq!(metadata, 1);
}
