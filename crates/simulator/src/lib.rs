//! A simulated Segment workspace: an HTTP server speaking the Public API segwatch polls.
//!
//! It serves the same paths, envelopes, bracket pagination, bearer auth and rate-limit
//! headers as `api.segmentapis.com`, from a workspace generated deterministically from a seed
//! (same seed and sizes give byte-identical responses). The workspace can be changed while
//! it runs ([`Mutation`], [`SimHandle::random_mutation`], [`SimHandle::shuffle`]) and faults
//! can be injected ([`Fault`]). It can also behave like workspaces that differ from the
//! default: a plan lacking features ([`Plan`], [`SimHandle::set_unavailable`]), an API release
//! that adds or drops fields ([`SimHandle::api_release`]), a change racing a page-by-page read
//! ([`FaultKind::PaginationRace`]) and records the client cannot parse
//! ([`FaultKind::BadItem`], [`FaultKind::BadEvent`]). The same server also answers the Profile API of one Unify space
//! (`/v1/spaces/{space}/collections/users/profiles/…`, Basic auth; see [`SimHandle::profile`]).
//! The `demo` command, end-to-end tests and benchmarks use it.
//!
//! In-process use goes through [`start`] and [`SimHandle`]; a separate process
//! (`segwatch simulate`, see [`SimulateArgs`]) is driven through bearer-protected control
//! routes:
//!
//! | Route | Body | Answer |
//! |---|---|---|
//! | `POST /_simulator/mutations` | a [`Mutation`], `{"unaudited": mutation}` (no audit event), or `{"random": n}` | JSON array of descriptions |
//! | `POST /_simulator/shuffle` | – | 204 |
//! | `POST /_simulator/faults` | a [`Fault`] object, or a spec string such as `"500,times=2"` | 201 `{"fault": spec}` |
//! | `DELETE /_simulator/faults` | – | 204 |
//! | `GET /_simulator/state` | – | the whole [`WorkspaceState`] |
//! | `PUT /_simulator/plan` | a [`Plan`] name, e.g. `"team"` | 204 |
//! | `POST /_simulator/unavailable` | `{"path": "/functions", "status": 404}` (`null` status: available again) | 204 |
//! | `POST /_simulator/releases` | a [`Release`] object or spec string such as `"users:createdAt"` | 201 `{"release": spec}` |
//! | `DELETE /_simulator/releases` | – | 204 |
//! | `GET /_simulator/races` | – | JSON array of [`RaceRecord`]s |
//!
//! Control routes are not rate limited, faulted, or counted by [`SimHandle::request_count`]
//! (nor logged by [`SimHandle::request_log`]).

mod audit;
mod cli;
mod controls;
mod faults;
mod generate;
mod mutations;
mod profiles;
mod race;
mod regulations;
mod server;
mod shape;
mod state;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use audit::AuditEvent;
pub use cli::{SimulateArgs, run};
pub use controls::ReverseEtlModel;
pub use controls::{
    DestinationFilter, SchemaSettings, Subscription, TrackSettings, TraitSettings, Transformation,
};
pub use faults::{BadEventDefect, BadItemShape, Fault, FaultKind, RaceAction};
pub use faults::{endless_body, trickle};
pub use mutations::Mutation;
pub use profiles::ProfileSummary;
pub use race::RaceRecord;
pub use regulations::RecordedRegulation;
pub use shape::{Plan, Release};
pub use state::{
    DataFlow, Destination, Function, FunctionSetting, Group, Label, Logos, Permission,
    PermissionResource, ResourceType, Role, Source, SourceMetadata, TrackingPlan, User, Warehouse,
    Workspace, WorkspaceState,
};

use server::{Shared, Sim};

/// How long [`SimHandle::shutdown`] waits for in-flight requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Mixed into the seed for the mutation generator, so it differs from the generation one.
const MUTATION_SEED_SALT: u64 = 0x5eb3_a7c4_d00d_f00d;

/// Errors from simulator operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A mutation named something that does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What was looked up: user, group, source, role or invite.
        kind: &'static str,
        /// The id, name or email looked up.
        id: String,
    },
    /// A mutation would not change anything, e.g. granting a role already held.
    #[error("{0}")]
    Conflict(String),
    /// A mutation's arguments are invalid.
    #[error("{0}")]
    Invalid(String),
    /// A `--fault` spec could not be parsed.
    #[error("invalid fault spec `{spec}`: {reason}")]
    FaultSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A fixed-window rate limit: at most `requests` API requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window; must be at least 1.
    pub requests: u32,
    /// Window length; must not be zero.
    pub window: Duration,
}

impl RateLimit {
    /// `requests` per minute.
    pub fn per_minute(requests: u32) -> Self {
        RateLimit {
            requests,
            window: Duration::from_secs(60),
        }
    }
}

/// Everything needed to start a simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// Bearer token clients must send.
    pub token: String,
    /// Seed for the generated workspace and the mutation sequence.
    pub seed: u64,
    /// Number of users.
    pub users: usize,
    /// Number of user groups.
    pub groups: usize,
    /// Number of sources.
    pub sources: usize,
    /// Number of pending workspace invites.
    pub invites: usize,
    /// Number of destinations (each fed by one source; none without sources).
    pub destinations: usize,
    /// Number of warehouses.
    pub warehouses: usize,
    /// Number of functions, spread over the function types.
    pub functions: usize,
    /// Number of tracking plans.
    pub tracking_plans: usize,
    /// Rate limit to enforce; `None` only reports headers.
    pub rate_limit: Option<RateLimit>,
    /// Faults in force from the start.
    pub faults: Vec<Fault>,
    /// The Unify space id the Profile API routes serve.
    pub profiles_space: String,
    /// The access secret Profile API clients must send (Basic auth user name).
    pub profiles_secret: SecretString,
    /// How long a regulation stays in each status (`INITIALIZED`, `RUNNING`) before the next.
    pub regulation_step: Duration,
    /// The workspace's plan: which features answer 403 (default [`Plan::Business`], all).
    pub plan: Plan,
    /// Endpoints (path prefixes) that answer 403 or 404 whatever the plan, e.g.
    /// `("/functions".into(), 404)` for a token or region without Functions.
    pub unavailable: Vec<(String, u16)>,
    /// API releases in force from the start (see [`SimHandle::api_release`]).
    pub releases: Vec<Release>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "sim-token".to_owned(),
            seed: 1,
            users: 40,
            groups: 5,
            sources: 12,
            invites: 3,
            destinations: 8,
            warehouses: 2,
            functions: 5,
            tracking_plans: 3,
            rate_limit: None,
            regulation_step: Duration::from_secs(30),
            faults: Vec::new(),
            profiles_space: "spa_sim".to_owned(),
            profiles_secret: SecretString::from("sim-profiles-secret"),
            plan: Plan::Business,
            unavailable: Vec::new(),
            releases: Vec::new(),
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("token", &"<redacted>")
            .field("seed", &self.seed)
            .field("users", &self.users)
            .field("groups", &self.groups)
            .field("sources", &self.sources)
            .field("invites", &self.invites)
            .field("destinations", &self.destinations)
            .field("warehouses", &self.warehouses)
            .field("functions", &self.functions)
            .field("tracking_plans", &self.tracking_plans)
            .field("rate_limit", &self.rate_limit)
            .field("faults", &self.faults)
            .field("profiles_space", &self.profiles_space)
            .field("regulation_step", &self.regulation_step)
            .field("plan", &self.plan)
            .field("unavailable", &self.unavailable)
            .field("releases", &self.releases)
            .finish_non_exhaustive()
    }
}

/// Generates the workspace, binds `listen` (port 0 picks a free port) and starts serving.
///
/// Fails with `InvalidInput` for an empty token or a rate limit of zero requests or zero
/// window, and with the bind error if the address is unavailable.
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
    if config.token.is_empty() {
        return Err(invalid("the simulator token must not be empty"));
    }
    if config.profiles_space.is_empty() || config.profiles_secret.expose_secret().is_empty() {
        return Err(invalid(
            "the Profile API space id and secret must not be empty",
        ));
    }
    if let Some(limit) = config.rate_limit
        && (limit.requests == 0 || limit.window.is_zero())
    {
        return Err(invalid(
            "a rate limit needs at least one request per non-empty window",
        ));
    }
    for (prefix, status) in &config.unavailable {
        shape::unavailable_status(*status)
            .map_err(|e| invalid(&format!("unavailable endpoint `{prefix}`: {e}")))?;
    }
    for release in &config.releases {
        // Re-validated: the fields are public, so a release may not come from `Release::new`.
        Release::new(&release.path, &release.field, release.value.clone())
            .map_err(|e| invalid(&e.to_string()))?;
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let sizes = generate::Sizes {
        users: config.users,
        groups: config.groups,
        sources: config.sources,
        invites: config.invites,
        destinations: config.destinations,
        warehouses: config.warehouses,
        functions: config.functions,
        tracking_plans: config.tracking_plans,
    };
    let seed = config.seed;
    // Large workspaces take a noticeable moment to generate; keep it off the async workers.
    let state = tokio::task::spawn_blocking(move || generate::generate(seed, sizes))
        .await
        .map_err(std::io::Error::other)?;
    let sim = Sim {
        state,
        rng: fastrand::Rng::with_seed(seed ^ MUTATION_SEED_SALT),
        audit: audit::AuditLog::new(seed),
    };
    let shared = Arc::new(Shared::new(
        config.token,
        profiles::ProfileAuth {
            space_id: config.profiles_space,
            secret: config.profiles_secret,
        },
        sim,
        config.faults,
        config.rate_limit,
        config.regulation_step,
    ));
    shared.set_plan(config.plan);
    for (prefix, status) in &config.unavailable {
        shared.set_unavailable(prefix, Some(*status));
    }
    for release in config.releases {
        shared.add_release(release);
    }
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let app = server::router(shared.clone());
    let server = tokio::spawn(async move {
        let stop = async move {
            // An error means every handle is gone; keep serving until the runtime ends.
            if shutdown_rx.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(target: "segwatch::simulator", error = %e, "simulator server failed");
        }
    });
    tracing::debug!(target: "segwatch::simulator", %addr, ?sizes, seed, "simulator started");
    Ok(SimHandle {
        inner: Arc::new(HandleInner {
            shared,
            addr,
            shutdown: shutdown_tx,
            server: Mutex::new(Some(server)),
        }),
    })
}

/// A running simulator. Clones share it; [`SimHandle::shutdown`] on any clone stops it.
///
/// Dropping every handle without calling `shutdown` leaves the server running until the
/// Tokio runtime shuts down, so `start(..).await?.base_url()` does not kill it by accident.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The bound address (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://HOST:PORT`, with loopback substituted for an unspecified bind address.
    pub fn base_url(&self) -> String {
        let mut addr = self.inner.addr;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        format!("http://{addr}")
    }

    /// Applies one mutation atomically and describes it in one line. The audit trail records
    /// it, as Segment's would.
    pub fn apply(&self, m: Mutation) -> Result<String, SimError> {
        self.inner.shared.apply(m, true)
    }

    /// Applies one mutation whose audit events name the workspace user `user_id` as the actor
    /// (with their email), rather than a random owner or token.
    pub fn apply_as(&self, user_id: &str, m: Mutation) -> Result<String, SimError> {
        self.inner.shared.apply_as(user_id, m)
    }

    /// Applies one mutation without a trace in the audit trail (a change whose author cannot be
    /// known).
    pub fn apply_unaudited(&self, m: Mutation) -> Result<String, SimError> {
        self.inner.shared.apply(m, false)
    }

    /// What the simulated Profile API holds on `user_id`'s profile, if the user exists.
    pub fn profile(&self, user_id: &str) -> Option<ProfileSummary> {
        profiles::summary(&self.inner.shared, user_id)
    }

    /// The audit trail so far, oldest first.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.inner.shared.read().audit.events().to_vec()
    }

    /// Every regulation created with `POST /regulations`, oldest first, as sent.
    pub fn regulations(&self) -> Vec<RecordedRegulation> {
        self.inner.shared.regulations()
    }

    /// The path and query of the latest API requests (up to 10,000), oldest first; control
    /// routes are not logged.
    pub fn request_log(&self) -> Vec<String> {
        self.inner.shared.request_log()
    }

    /// Applies a plausible random mutation (deterministic from the seed) and describes it.
    pub fn random_mutation(&self) -> String {
        self.inner.shared.random_mutation()
    }

    /// Reorders every list and inner array (except write keys) without changing content.
    pub fn shuffle(&self) {
        self.inner.shared.shuffle();
    }

    /// Adds a fault after those already in force.
    pub fn inject(&self, f: Fault) {
        self.inner.shared.inject(f);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.inner.shared.clear_faults();
    }

    /// Switches the workspace's plan; features the new plan lacks answer 403 from the next
    /// request on.
    pub fn set_plan(&self, plan: Plan) {
        self.inner.shared.set_plan(plan);
    }

    /// The plan in force.
    pub fn plan(&self) -> Plan {
        self.inner.shared.plan()
    }

    /// Makes every endpoint under `path_prefix` (segment-wise) answer `status`: 403
    /// (`Forbidden`, not on the plan) or 404 (`NotFound`, as a token or region lacking the
    /// endpoint); `None` makes it available again (the plan still applies). `GET /` always
    /// answers.
    ///
    /// # Panics
    ///
    /// For a status other than 403 or 404: a bug in the calling test.
    pub fn set_unavailable(&self, path_prefix: &str, status: Option<u16>) {
        if let Some(status) = status
            && let Err(e) = shape::unavailable_status(status)
        {
            panic!("set_unavailable({path_prefix:?}): {e}");
        }
        self.inner.shared.set_unavailable(path_prefix, status);
    }

    /// An API release: every item served under `path_prefix` (the items of its list and the
    /// object of its get-by-id route: `/users` covers `GET /users` and `GET /users/{id}`) gets
    /// `field` set to `value`, or loses it with `None`. `field` is dotted and `[]` means every
    /// element of an array: `createdAt`, `permissions[].createdAt`, `settings.newKey`. Applied
    /// when responses are written, after the releases already in force, so it survives
    /// mutations. See [`Release`].
    ///
    /// # Panics
    ///
    /// For an empty path or a malformed field path: a bug in the calling test.
    pub fn api_release(&self, path_prefix: &str, field: &str, value: Option<serde_json::Value>) {
        let release = Release::new(path_prefix, field, value)
            .unwrap_or_else(|e| panic!("api_release({path_prefix:?}, {field:?}): {e}"));
        self.inner.shared.add_release(release);
    }

    /// Withdraws every API release: responses take their normal shape again.
    pub fn clear_releases(&self) {
        self.inner.shared.clear_releases();
    }

    /// The pagination races run so far (see [`FaultKind::PaginationRace`]), oldest first.
    pub fn races(&self) -> Vec<RaceRecord> {
        self.inner.shared.races()
    }

    /// Runs `f` on the current state under a read lock; keep it short, requests wait on it.
    pub fn read<R>(&self, f: impl FnOnce(&WorkspaceState) -> R) -> R {
        f(&self.inner.shared.read().state)
    }

    /// API requests received so far, rejected ones included (control routes excluded).
    pub fn request_count(&self) -> u64 {
        self.inner.shared.requests()
    }

    /// Applies a random mutation every `every` until shutdown, logging each description.
    pub fn spawn_mutator(&self, every: Duration) -> JoinHandle<()> {
        let handle = self.clone();
        let mut stop = self.inner.shutdown.subscribe();
        // Bounded so the first deadline cannot overflow the clock.
        let every = every.clamp(
            Duration::from_millis(1),
            Duration::from_secs(365 * 24 * 3600),
        );
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let description = handle.random_mutation();
                        tracing::info!(target: "segwatch::simulator", "simulated workspace changed: {description}");
                    }
                    changed = stop.wait_for(|stop| *stop) => {
                        let _ = changed;
                        break;
                    }
                }
            }
        })
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a few seconds) and
    /// stops mutators started by [`SimHandle::spawn_mutator`].
    pub async fn shutdown(self) {
        self.inner.shutdown.send_replace(true);
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut server) = server
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }
}
