//! A simulated Segment workspace on loopback with a scratch directory for the database.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use segwatch_api::segment::ClientConfig;
use segwatch_simulator::{SimConfig, SimHandle};
use segwatch_store::Store;
use tempfile::TempDir;

use crate::{STARTER_RULES, Segwatch, TOKEN};

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
        let sim = segwatch_simulator::start(config, "127.0.0.1:0".parse().unwrap())
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
