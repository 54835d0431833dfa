//! The HTTP side: routing, auth, rate limiting, fault injection, pagination and envelopes.

mod control;
mod controls;
mod gate;
mod pagination;
mod responses;
mod routes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use fastrand::Rng;

use super::audit::AuditLog;
use super::faults::{Fault, FaultSet, RaceAction};
use super::mutations::{self, Mutation};
use super::race::{self, RaceRecord};
use super::regulations::{RecordedRegulation, Regulations};
use super::shape::{self, Availability, Plan, Release};
use super::state::WorkspaceState;
use super::{RateLimit, SimError};
use control::{
    delete_faults, delete_releases, get_races, get_state, post_fault, post_mutations, post_release,
    post_shuffle, post_unavailable, put_plan,
};
use gate::{Limiter, api_gate, control_gate, method_not_allowed, not_found, rewrite_json};
use routes::{
    get_destination, get_function, get_group, get_regulation, get_source, get_tracking_plan,
    get_user, get_warehouse, get_workspace, list_audit_events, list_destinations, list_functions,
    list_group_invites, list_group_users, list_groups, list_invites, list_labels, list_regulations,
    list_roles, list_sources, list_tracking_plan_sources, list_tracking_plans, list_users,
    list_warehouse_sources, list_warehouses, post_regulation,
};

pub(crate) use gate::truncate_body;
pub(crate) use pagination::{decode_cursor, encode_cursor};

const SEGMENT_JSON: &str = "application/vnd.segment.v1+json";
const PLAIN_JSON: &str = "application/json";
/// Largest page a client may ask for, as in Segment's v1 schema.
const MAX_COUNT: usize = 200;
/// Remaining quota reported when no rate limit is configured.
const UNLIMITED: u32 = 1_000_000;
/// Window used for the headers when no rate limit is configured.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Furthest in the future an `X-RateLimit-Reset` date may point (one year).
const MAX_RESET: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most random mutations one control request may ask for.
const MAX_RANDOM_PER_REQUEST: usize = 10_000;
/// API requests the request log keeps (the most recent).
const REQUEST_LOG_LEN: usize = 10_000;

/// The workspace plus the generator its mutations draw from, locked together so a sequence
/// of mutations is reproducible.
pub(crate) struct Sim {
    pub(crate) state: WorkspaceState,
    pub(crate) rng: Rng,
    /// The audit trail the mutations leave.
    pub(crate) audit: AuditLog,
}

/// State shared by every request handler and every [`super::SimHandle`] clone.
pub(crate) struct Shared {
    token: String,
    /// The Profile API's space and access secret.
    pub(super) profiles: super::profiles::ProfileAuth,
    sim: RwLock<Sim>,
    pub(super) faults: Mutex<FaultSet>,
    limiter: Mutex<Limiter>,
    pub(super) requests: AtomicU64,
    /// Regulations created with `POST /regulations`.
    regulations: Mutex<Regulations>,
    /// The path and query of the latest API requests, oldest first.
    request_log: Mutex<std::collections::VecDeque<String>>,
    /// The plan and the endpoints made unavailable.
    availability: Mutex<Availability>,
    /// API releases in force, applied in order to every response they cover.
    releases: Mutex<Vec<Release>>,
    /// Pagination races run so far, oldest first.
    races: Mutex<Vec<RaceRecord>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking request must not take the simulator down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        token: String,
        profiles: super::profiles::ProfileAuth,
        sim: Sim,
        faults: Vec<Fault>,
        rate_limit: Option<RateLimit>,
        regulation_step: Duration,
    ) -> Self {
        Shared {
            token,
            profiles,
            regulations: Mutex::new(Regulations::new(regulation_step)),
            sim: RwLock::new(sim),
            faults: Mutex::new(FaultSet::new(faults)),
            limiter: Mutex::new(Limiter::new(rate_limit)),
            requests: AtomicU64::new(0),
            request_log: Mutex::new(std::collections::VecDeque::new()),
            availability: Mutex::new(Availability::default()),
            releases: Mutex::new(Vec::new()),
            races: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set_plan(&self, plan: Plan) {
        lock(&self.availability).plan = plan;
    }

    pub(crate) fn plan(&self) -> Plan {
        lock(&self.availability).plan
    }

    /// Makes `prefix` answer `status` (403 or 404), or available again with `None`.
    pub(crate) fn set_unavailable(&self, prefix: &str, status: Option<u16>) {
        lock(&self.availability).set(prefix, status);
    }

    pub(crate) fn add_release(&self, release: Release) {
        lock(&self.releases).push(release);
    }

    pub(crate) fn clear_releases(&self) {
        lock(&self.releases).clear();
    }

    pub(crate) fn races(&self) -> Vec<RaceRecord> {
        lock(&self.races).clone()
    }

    /// Runs one pagination race on `path` under the write lock and records it.
    fn race(&self, action: RaceAction, path: &str) {
        let serial = lock(&self.races).len() + 1;
        let record = race::run(&mut self.write(), action, path, serial);
        if let Some(record) = record {
            lock(&self.races).push(record);
        }
    }

    /// Applies the releases covering `path` to a successful JSON response.
    async fn released(&self, path: &str, response: Response) -> Response {
        let releases = lock(&self.releases).clone();
        if !shape::any_release_covers(&releases, path) {
            return response;
        }
        rewrite_json(response, |body| {
            shape::apply_releases(&releases, path, body);
        })
        .await
    }

    pub(crate) fn regulations(&self) -> Vec<RecordedRegulation> {
        lock(&self.regulations).recorded()
    }

    pub(crate) fn request_log(&self) -> Vec<String> {
        lock(&self.request_log).iter().cloned().collect()
    }

    pub(super) fn log_request(&self, path_and_query: &str) {
        let mut log = lock(&self.request_log);
        if log.len() == REQUEST_LOG_LEN {
            log.pop_front();
        }
        log.push_back(path_and_query.to_owned());
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Sim> {
        self.sim.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Sim> {
        self.sim.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Applies `m`; with `audited`, appends its events to the audit trail.
    pub(crate) fn apply(&self, m: Mutation, audited: bool) -> Result<String, SimError> {
        let mut sim = self.write();
        let Sim { state, rng, audit } = &mut *sim;
        let mut touched = Vec::new();
        let description = mutations::apply(state, rng, m, &mut touched)?;
        if audited {
            audit.record(state, touched);
        }
        Ok(description)
    }

    /// Applies `m` with the workspace user `user_id` as the events' actor (with `actorEmail`).
    pub(crate) fn apply_as(&self, user_id: &str, m: Mutation) -> Result<String, SimError> {
        let mut sim = self.write();
        let Sim { state, rng, audit } = &mut *sim;
        let email = state
            .user(user_id)
            .map(|u| u.email.clone())
            .ok_or_else(|| SimError::Invalid(format!("no user {user_id}")))?;
        let mut touched = Vec::new();
        let description = mutations::apply(state, rng, m, &mut touched)?;
        audit.record_by(user_id.to_owned(), Some(email), touched);
        Ok(description)
    }

    pub(crate) fn random_mutation(&self) -> String {
        let mut sim = self.write();
        let Sim { state, rng, audit } = &mut *sim;
        let mut last_error = None;
        for _ in 0..16 {
            let m = mutations::random(state, rng);
            let mut touched = Vec::new();
            match mutations::apply(state, rng, m, &mut touched) {
                Ok(description) => {
                    audit.record(state, touched);
                    return description;
                }
                Err(e) => last_error = Some(e),
            }
        }
        // The picker only proposes valid targets, so this is a bug rather than bad luck.
        format!(
            "no mutation applied: {}",
            last_error.map_or_else(String::new, |e| e.to_string())
        )
    }

    pub(crate) fn shuffle(&self) {
        let mut sim = self.write();
        let Sim { state, rng, .. } = &mut *sim;
        mutations::shuffle(state, rng);
    }

    pub(crate) fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(token.trim(), &self.token)
    }
}

/// Compares without an early exit on the first differing byte.
pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The API routes, behind auth, rate limiting and faults; plus the bearer-protected control
/// routes under `/_simulator`, which are neither rate limited, faulted nor counted.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/", get(get_workspace))
        .route("/roles", get(list_roles))
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user))
        .route("/invites", get(list_invites))
        .route("/groups", get(list_groups))
        .route("/groups/{id}", get(get_group))
        .route("/groups/{id}/users", get(list_group_users))
        .route("/groups/{id}/invites", get(list_group_invites))
        .route("/sources", get(list_sources))
        .route("/sources/{id}", get(get_source))
        .route("/sources/{id}/settings", get(controls::get_source_settings))
        .route("/transformations", get(controls::list_transformations))
        .route(
            "/reverse-etl-models",
            get(controls::list_reverse_etl_models),
        )
        .route("/transformations/{id}", get(controls::get_transformation))
        .route("/labels", get(list_labels))
        .route("/audit-events", get(list_audit_events))
        .route("/destinations", get(list_destinations))
        .route("/destinations/{id}", get(get_destination))
        .route(
            "/destination/{id}/filters",
            get(controls::list_destination_filters),
        )
        .route(
            "/destinations/{id}/subscriptions",
            get(controls::list_destination_subscriptions),
        )
        .route("/warehouses", get(list_warehouses))
        .route("/warehouses/{id}", get(get_warehouse))
        .route(
            "/warehouses/{id}/connected-sources",
            get(list_warehouse_sources),
        )
        .route("/functions", get(list_functions))
        .route("/functions/{id}", get(get_function))
        .route("/tracking-plans", get(list_tracking_plans))
        .route("/tracking-plans/{id}", get(get_tracking_plan))
        .route(
            "/tracking-plans/{id}/sources",
            get(list_tracking_plan_sources),
        )
        .route("/regulations", get(list_regulations).post(post_regulation))
        .route("/regulations/{id}", get(get_regulation))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), api_gate));
    let control = Router::new()
        .route("/_simulator/mutations", post(post_mutations))
        .route("/_simulator/shuffle", post(post_shuffle))
        .route("/_simulator/faults", post(post_fault).delete(delete_faults))
        .route("/_simulator/state", get(get_state))
        .route("/_simulator/plan", axum::routing::put(put_plan))
        .route("/_simulator/unavailable", post(post_unavailable))
        .route(
            "/_simulator/releases",
            post(post_release).delete(delete_releases),
        )
        .route("/_simulator/races", get(get_races))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(shared.clone(), control_gate));
    let profiles = super::profiles::router(shared.clone());
    control.merge(profiles).merge(api).with_state(shared)
}
