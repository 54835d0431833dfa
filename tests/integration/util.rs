//! The test harness: a simulated workspace on loopback, a temporary database, and a fluent
//! runner for the real `segwatch` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use segwatch_sinks::webhook::signature;
use segwatch_sinks::{Sink, SinkConfig, SinkFilter, SinkTarget};

use secrecy::SecretString;
use segwatch::poll::{PollError, PollOutcome, Poller};
use segwatch_api::segment::{ClientConfig, SegmentClient};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{self as simulator, SimConfig, SimHandle};
use segwatch_store::Store;
use tempfile::TempDir;

/// The token every test simulator accepts. Long and distinctive so a leak is easy to find.
pub const TOKEN: &str = "sgw-test-token-4f9c2d7e1a8b3c6d5e0f";

/// The starter rule pack shipped in the repository.
pub const STARTER_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");

/// A simulated workspace and a scratch directory holding the database.
pub struct TestWorkspace {
    /// The running simulator.
    pub sim: SimHandle,
    /// Scratch directory (removed on drop).
    pub dir: TempDir,
    /// Tuning applied to every client this workspace builds.
    pub max_pages: u32,
}

impl TestWorkspace {
    /// A small default workspace.
    pub async fn start() -> TestWorkspace {
        Self::with(SimConfig::default()).await
    }

    /// A workspace from an explicit simulator configuration (the token is always [`TOKEN`]).
    pub async fn with(config: SimConfig) -> TestWorkspace {
        let config = SimConfig {
            token: TOKEN.into(),
            ..config
        };
        let sim = simulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("the simulator starts");
        TestWorkspace {
            sim,
            dir: tempfile::tempdir().unwrap(),
            max_pages: 10_000,
        }
    }

    /// Path of the database file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("segwatch.db")
    }

    /// Client configuration with test-sized backoff.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.sim.base_url(), SecretString::from(TOKEN));
        c.backoff_min = Duration::from_millis(10);
        c.backoff_max = Duration::from_millis(100);
        c.max_attempts = 4;
        c.max_pages = self.max_pages;
        c.request_timeout = Duration::from_secs(5);
        c
    }

    /// Runs one poll cycle in-process.
    pub async fn poll(&self) -> Result<PollOutcome, PollError> {
        self.poll_with(self.client_config()).await
    }

    /// Runs one poll cycle with a specific client configuration.
    pub async fn poll_with(&self, config: ClientConfig) -> Result<PollOutcome, PollError> {
        let client = SegmentClient::new(config).unwrap();
        let mut store = self.store();
        Poller::new(client, SecretPolicy::default(), "default")
            .poll(&mut store)
            .await
    }

    /// Runs one poll cycle that evaluates `rules`.
    pub async fn poll_rules(&self, rules: &Arc<RuleSet>) -> Result<PollOutcome, PollError> {
        let client = SegmentClient::new(self.client_config()).unwrap();
        let mut store = self.store();
        Poller::new(client, SecretPolicy::default(), "default")
            .with_rules(rules.clone(), false)
            .poll(&mut store)
            .await
    }

    /// Waits (at most 20 s) until `ready` holds for the database as a read-only reader sees it,
    /// e.g. a poll running in another process has reached some point.
    pub async fn wait_for_db(&self, what: &str, ready: impl Fn(&Store) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !Store::open_read_only(&self.db())
            .ok()
            .is_some_and(|s| ready(&s))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the latest poll is `running`: another process is mid-poll.
    pub async fn wait_until_mid_poll(&self) {
        self.wait_for_db("a poll is running", |s| {
            s.snapshots(1, 1).is_ok_and(|l| {
                l.first()
                    .is_some_and(|s| s.status == segwatch_store::SnapshotStatus::Running)
            })
        })
        .await;
    }

    /// Asserts SQLite finds the database file intact.
    pub fn assert_intact(&self) {
        let ok: String = self
            .store()
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "PRAGMA integrity_check");
    }

    /// Opens the database.
    pub fn store(&self) -> Store {
        Store::open(&self.db()).unwrap()
    }

    /// The `segwatch` binary, configured for this workspace through the environment only.
    pub fn segwatch(&self) -> Segwatch {
        Segwatch::new()
            .env("SEGWATCH_SEGMENT__API_URL", &self.sim.base_url())
            .env("SEGWATCH_SEGMENT__TOKEN", TOKEN)
            .env("SEGWATCH_DATABASE__PATH", self.db().to_str().unwrap())
            .env("SEGWATCH_SEGMENT__MAX_ATTEMPTS", "3")
            .env("SEGWATCH_RULES__PATH", STARTER_RULES)
            .current_dir(self.dir.path())
    }
}

/// The HMAC key every test webhook sink signs with.
pub const HMAC_KEY: &str = "whsec-test-7d1f0c9a";

/// An HTTP receiver standing in for a webhook endpoint.
pub struct WebhookReceiver {
    pub url: String,
    /// Event ids of the requests it accepted, with their parsed bodies.
    pub accepted: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// Status it answers with (200 = up).
    pub status: Arc<AtomicU16>,
    /// Milliseconds it waits before answering.
    pub delay_ms: Arc<AtomicU64>,
    /// Largest body it takes, in bytes; bigger ones get 413 (0 = any size).
    pub max_body: Arc<AtomicUsize>,
    /// Every request it received: the status it answered and the body's size in bytes.
    pub requests: Arc<Mutex<Vec<(u16, usize)>>>,
}

impl WebhookReceiver {
    /// Starts on a loopback port.
    pub async fn start() -> WebhookReceiver {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let max_body = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, s, d) = (accepted.clone(), status.clone(), delay_ms.clone());
        let (m, r) = (max_body.clone(), requests.clone());
        let app = axum::Router::new()
            .route(
                "/hook/{token}",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let (a, s, d) = (a.clone(), s.clone(), d.clone());
                    let (m, r) = (m.clone(), r.clone());
                    async move {
                        tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                        let max = m.load(Ordering::SeqCst);
                        if max > 0 && body.len() > max {
                            r.lock().unwrap().push((413, body.len()));
                            return StatusCode::PAYLOAD_TOO_LARGE;
                        }
                        let expected = signature(HMAC_KEY.as_bytes(), &body);
                        let given = headers
                            .get("x-segwatch-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if given != expected {
                            r.lock().unwrap().push((401, body.len()));
                            return StatusCode::UNAUTHORIZED;
                        }
                        let status = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                        r.lock().unwrap().push((status.as_u16(), body.len()));
                        if status.is_success() {
                            let event = headers
                                .get("x-segwatch-event")
                                .unwrap()
                                .to_str()
                                .unwrap()
                                .to_string();
                            a.lock()
                                .unwrap()
                                .push((event, serde_json::from_slice(&body).unwrap()));
                        }
                        status
                    }
                }),
            )
            // The receiver's own `max_body` is the only limit (axum's default is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook/secret-path-4411",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        WebhookReceiver {
            url,
            accepted,
            status,
            delay_ms,
            max_body,
            requests,
        }
    }

    /// The `X-Segwatch-Event` of each accepted request, in order.
    pub fn events(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// A webhook sink to this receiver, sending resolutions too.
    pub fn sink(&self, digest_threshold: usize) -> Sink {
        Sink::new(SinkConfig {
            name: "hook".into(),
            filter: SinkFilter {
                send_resolved: true,
                ..SinkFilter::default()
            },
            digest_threshold,
            max_message_bytes: segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES,
            max_messages_per_run: segwatch_sinks::DEFAULT_MAX_MESSAGES_PER_RUN,
            max_attempts: 5,
            retry_backoff: segwatch_sinks::outbox::RetryBackoff::default(),
            target: SinkTarget::Webhook {
                url: SecretString::from(self.url.clone()),
                secret: Some(SecretString::from(HMAC_KEY)),
            },
            app_base: None,
            templates: None,
        })
        .unwrap()
    }

    /// The alert bodies accepted so far for `rule_id`, with their events (`raised`, `resolved`).
    pub fn alerts_of(&self, rule_id: &str) -> Vec<(String, serde_json::Value)> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["alert"]["rule_id"] == rule_id)
            .map(|(_, body)| {
                let event = body["event"].as_str().unwrap_or_default().to_string();
                (event, body["alert"].clone())
            })
            .collect()
    }

    /// A `[[sinks]]` entry for a configuration file sending here.
    pub fn sink_toml(&self) -> String {
        format!(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n",
            self.url
        )
    }
}

/// A fluent runner for the `segwatch` binary.
#[must_use]
pub struct Segwatch {
    command: Command,
}

impl Segwatch {
    /// The binary with a clean `SEGWATCH_*` environment.
    pub fn new() -> Segwatch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_segwatch"));
        for (key, _) in std::env::vars() {
            if key.starts_with("SEGWATCH_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.stdin(Stdio::null());
        Segwatch { command }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs to completion and returns the output, whatever the exit status.
    pub fn output(mut self) -> Run {
        let output = self.command.output().expect("segwatch runs");
        Run { output }
    }

    /// Runs and expects success.
    pub fn success(self) -> Run {
        let run = self.output();
        assert!(
            run.output.status.success(),
            "segwatch failed:\n{}",
            run.describe()
        );
        run
    }

    /// Runs and expects failure.
    pub fn failure(self) -> Run {
        let run = self.output();
        assert!(
            !run.output.status.success(),
            "segwatch unexpectedly succeeded:\n{}",
            run.describe()
        );
        run
    }

    /// Starts without waiting.
    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("segwatch starts")
    }
}

/// A finished run of the binary.
pub struct Run {
    /// Raw output.
    pub output: Output,
}

impl Run {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts standard error contains every needle.
    pub fn stderr_contains(self, needles: &[&str]) -> Self {
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{}", self.describe());
        }
        self
    }

    /// Asserts standard output contains every needle.
    pub fn stdout_contains(self, needles: &[&str]) -> Self {
        let out = self.stdout();
        for n in needles {
            assert!(out.contains(n), "stdout lacks {n:?}:\n{}", self.describe());
        }
        self
    }

    /// Parses standard output as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// A loopback port nothing listens on (for a daemon's health endpoint).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM to a daemon and waits (at most 10 s) until it exits.
pub fn stop_daemon(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
