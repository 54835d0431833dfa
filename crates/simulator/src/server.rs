//! The HTTP side: routing, auth, rate limiting, fault injection, pagination and envelopes.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fastrand::Rng;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::audit::{self, AuditLog};
use super::faults::{Fault, FaultKind, FaultSet, RaceAction};
use super::mutations::{self, Mutation};
use super::race::{self, RaceRecord};
use super::regulations::{RecordedRegulation, Regulations};
use super::shape::{self, Availability, Plan, Refusal, Release};
use super::state::{Function, Group, Permission, TrackingPlan, User, Warehouse, WorkspaceState};
use super::{RateLimit, SimError};

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

/// A fixed-window request counter; the window starts at the first request after the previous
/// one ended.
struct Limiter {
    limit: Option<RateLimit>,
    window_start: Instant,
    consumed: u32,
}

/// What the rate-limit headers report for one request.
#[derive(Debug, Clone, Copy)]
struct Quota {
    consumed: u32,
    remaining: u32,
    reset_in: Duration,
    exceeded: bool,
}

impl Limiter {
    fn new(limit: Option<RateLimit>) -> Self {
        Limiter {
            limit,
            window_start: Instant::now(),
            consumed: 0,
        }
    }

    fn window(&self) -> Duration {
        self.limit.map_or(DEFAULT_WINDOW, |l| l.window)
    }

    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.window_start) >= self.window() {
            self.window_start = now;
            self.consumed = 0;
        }
    }

    fn quota(&self, now: Instant) -> Quota {
        let max = self.limit.map_or(UNLIMITED, |l| l.requests);
        Quota {
            consumed: self.consumed,
            remaining: max.saturating_sub(self.consumed),
            reset_in: self
                .window_start
                .checked_add(self.window())
                .map_or(Duration::MAX, |end| end.saturating_duration_since(now)),
            exceeded: self.limit.is_some() && self.consumed > max,
        }
    }

    /// Counts one request (rejected ones too, as Segment's `consumedPoints` does).
    fn consume(&mut self, now: Instant) -> Quota {
        self.roll(now);
        self.consumed = self.consumed.saturating_add(1);
        self.quota(now)
    }

    fn peek(&mut self, now: Instant) -> Quota {
        self.roll(now);
        self.quota(now)
    }
}

fn ceil_millis(d: Duration) -> u64 {
    u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

fn with_quota(mut response: Response, quota: &Quota) -> Response {
    // Round the reset time up to the next whole second; HTTP dates have no fractions.
    // Absurd windows are capped rather than overflowing the clock.
    let now = SystemTime::now();
    let reset = now
        .checked_add(quota.reset_in.min(MAX_RESET) + Duration::from_millis(999))
        .unwrap_or(now);
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-consumed", HeaderValue::from(quota.consumed));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(quota.remaining));
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(reset)) {
        headers.insert("x-ratelimit-reset", v);
    }
    response
}

/// Segment's `errors` envelope.
fn error_response(
    status: StatusCode,
    kind: &str,
    message: &str,
    field: Option<&str>,
    data: Option<serde_json::Value>,
) -> Response {
    #[derive(Serialize)]
    struct Item<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        errors: [Item<'a>; 1],
    }
    let body = serde_json::to_vec(&Body {
        errors: [Item {
            kind,
            message,
            field,
            data,
        }],
    })
    .expect("error bodies always serialise");
    (status, [(CONTENT_TYPE, PLAIN_JSON)], body).into_response()
}

fn not_found_response() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Resource not found",
        None,
        None,
    )
}

fn validation(field: &str, message: &str) -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationFailure",
        message,
        Some(field),
        None,
    )
}

fn too_many_requests(ms_before_next: u64, consumed: u32) -> Response {
    error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "RequestError",
        "Too many requests",
        None,
        Some(serde_json::json!({
            "remainingPoints": 0,
            "msBeforeNext": ms_before_next,
            "consumedPoints": consumed,
        })),
    )
}

fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status {
        StatusCode::BAD_GATEWAY => "BadGateway",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
        _ => "InternalServerError",
    };
    error_response(status, kind, "Simulated server error", None, None)
}

fn sim_error_response(e: &SimError) -> Response {
    let (status, kind) = match e {
        SimError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
        SimError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        SimError::Invalid(_) | SimError::FaultSpec { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "ValidationFailure")
        }
    };
    error_response(status, kind, &e.to_string(), None, None)
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
        .route("/labels", get(list_labels))
        .route("/audit-events", get(list_audit_events))
        .route("/destinations", get(list_destinations))
        .route("/destinations/{id}", get(get_destination))
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

/// True for the list endpoints that take `pagination`.
fn is_paginated(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["roles"
            | "users"
            | "invites"
            | "groups"
            | "sources"
            | "destinations"
            | "warehouses"
            | "functions"
            | "tracking-plans"
            | "audit-events"
            | "regulations"]
            | ["groups", _, "users" | "invites"]
            | ["warehouses", _, "connected-sources"]
            | ["tracking-plans", _, "sources"]
    )
}

/// Marks a request whose list answer must keep handing out cursors.
#[derive(Debug, Clone, Copy)]
struct Endless {
    repeat: bool,
}

async fn api_gate(State(sh): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    sh.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(pq) = req.uri().path_and_query() {
        sh.log_request(pq.as_str());
    }
    let now = Instant::now();
    if !sh.authorized(req.headers()) {
        let quota = lock(&sh.limiter).peek(now);
        let response = error_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Missing or invalid bearer token",
            None,
            None,
        );
        return with_quota(response, &quota);
    }
    let quota = lock(&sh.limiter).consume(now);
    if quota.exceeded {
        let response = too_many_requests(ceil_millis(quota.reset_in), quota.consumed);
        return with_quota(response, &quota);
    }
    let path = req.uri().path().to_owned();
    let refusal = lock(&sh.availability).check(&path);
    if let Some(refusal) = refusal {
        return with_quota(refusal_response(&refusal), &quota);
    }
    let paginated = req.method() == Method::GET && is_paginated(&path);
    let query = req.uri().query().unwrap_or_default().to_owned();
    let later_page = paginated && cursor_offset(&query) > 0;
    let fault = lock(&sh.faults).select_page(&path, &query, paginated, later_page);
    if let Some(kind) = &fault {
        tracing::debug!(target: "segwatch::simulator", %path, fault = ?kind, "injecting fault");
    }
    let response = match fault {
        None => sh.released(&path, next.run(req).await).await,
        Some(FaultKind::RateLimited { ms_before_next }) => {
            let quota = Quota {
                remaining: 0,
                reset_in: Duration::from_millis(ms_before_next),
                ..quota
            };
            return with_quota(too_many_requests(ms_before_next, quota.consumed), &quota);
        }
        Some(FaultKind::ServerError { status }) => server_error(status),
        Some(FaultKind::ClientError { status }) => error_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            match status {
                403 => "Forbidden",
                404 => "NotFound",
                _ => "ValidationFailure",
            },
            "Simulated client error",
            None,
            None,
        ),
        Some(FaultKind::Slow { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            sh.released(&path, next.run(req).await).await
        }
        Some(FaultKind::MalformedJson) => {
            truncate_body(sh.released(&path, next.run(req).await).await).await
        }
        Some(FaultKind::EndlessBody) => super::faults::endless_body(),
        Some(FaultKind::Trickle { interval_ms }) => {
            super::faults::trickle(sh.released(&path, next.run(req).await).await, interval_ms).await
        }
        Some(FaultKind::EndlessCursor { repeat }) => {
            req.extensions_mut().insert(Endless { repeat });
            sh.released(&path, next.run(req).await).await
        }
        Some(FaultKind::PaginationRace { action }) => {
            sh.race(action, &path);
            sh.released(&path, next.run(req).await).await
        }
        Some(FaultKind::BadItem { shape }) => {
            let response = sh.released(&path, next.run(req).await).await;
            rewrite_json(response, |body| shape::add_bad_item(body, shape)).await
        }
        Some(FaultKind::BadEvent { defect }) => {
            let response = sh.released(&path, next.run(req).await).await;
            rewrite_json(response, |body| shape::add_bad_event(body, defect)).await
        }
    };
    with_quota(response, &quota)
}

/// The offset a request's `pagination[cursor]` points at (0 when absent or unreadable).
fn cursor_offset(query: &str) -> usize {
    reqwest::Url::parse(&format!("http://query.invalid/?{query}"))
        .ok()
        .and_then(|url| {
            url.query_pairs()
                .find(|(k, _)| k == "pagination[cursor]" || k == "pagination.cursor")
                .and_then(|(_, v)| decode_cursor(&v))
        })
        .unwrap_or(0)
}

/// 403 with Segment's errors envelope for a feature not on the plan, or the plain 404.
///
/// What Segment's Public API answers for a feature the plan lacks is not documented: its
/// OpenAPI spec declares no 403 (see shared/segment-public-api/ENDPOINTS.md: "treat any
/// non-2xx as the `errors` envelope"), and searches of Segment's docs
/// (twilio.com/docs/segment/api/public-api only says the API is for Team and Business plans),
/// SDKs and issue trackers found no example body. So this uses the documented envelope with
/// `type: "Forbidden"`, the type this simulator already gives a 403.
fn refusal_response(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::Missing => not_found_response(),
        Refusal::NotOnPlan { feature, plan } => error_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "{feature} is not available on this workspace's plan ({plan}); upgrade the plan to use it"
            ),
            None,
            None,
        ),
    }
}

/// Parses a successful JSON body, lets `edit` change it and re-serialises it; other responses
/// (errors, a body that is not JSON) pass unchanged.
async fn rewrite_json(response: Response, edit: impl FnOnce(&mut serde_json::Value)) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return server_error(500);
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    edit(&mut value);
    parts.headers.remove(CONTENT_LENGTH);
    let body = serde_json::to_vec(&value).expect("a JSON value always serialises");
    Response::from_parts(parts, Body::from(body))
}

/// Cuts a successful body in half: a strict prefix of a JSON object is never valid JSON.
pub(super) async fn truncate_body(response: Response) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return server_error(500);
    };
    parts.headers.remove(CONTENT_LENGTH);
    let cut = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, Body::from(cut))
}

async fn control_gate(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if !sh.authorized(req.headers()) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Missing or invalid bearer token",
            None,
            None,
        );
    }
    next.run(req).await
}

async fn not_found() -> Response {
    not_found_response()
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "Method not allowed",
        None,
        None,
    )
}

/// `{"data": {key: value, "pagination": …}}`, serialised straight from borrowed items.
fn data_body<T: Serialize + ?Sized>(key: &str, value: &T, pagination: Option<&PageOut>) -> Vec<u8> {
    struct Inner<'a, T: ?Sized> {
        key: &'a str,
        value: &'a T,
        pagination: Option<&'a PageOut>,
    }
    impl<T: Serialize + ?Sized> Serialize for Inner<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            map.serialize_entry(self.key, self.value)?;
            if let Some(p) = self.pagination {
                map.serialize_entry("pagination", p)?;
            }
            map.end()
        }
    }
    struct Envelope<'a, T: ?Sized>(Inner<'a, T>);
    impl<T: Serialize + ?Sized> Serialize for Envelope<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry("data", &self.0)?;
            map.end()
        }
    }
    serde_json::to_vec(&Envelope(Inner {
        key,
        value,
        pagination,
    }))
    .expect("simulator data always serialises")
}

fn ok(body: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, SEGMENT_JSON)], body).into_response()
}

/// Standard base64 of the decimal offset, like Segment's `MA==` for 0.
pub(crate) fn encode_cursor(offset: usize) -> String {
    BASE64.encode(offset.to_string())
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = BASE64.decode(cursor.trim()).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// A validated `pagination` query.
#[derive(Debug)]
struct PageIn {
    count: usize,
    offset: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PageOut {
    current: String,
    next: Option<String>,
    previous: Option<String>,
    total_entries: usize,
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Why a `pagination` query was rejected: the offending field and a message.
type PageError = (&'static str, &'static str);

fn parse_page(query: QueryPairs) -> Result<PageIn, PageError> {
    let Query(pairs) = query.map_err(|_| ("pagination", "Malformed query string"))?;
    let mut count = None;
    let mut cursor = None;
    for (key, value) in pairs {
        match key.as_str() {
            "pagination[count]" | "pagination.count" => count = Some(value),
            "pagination[cursor]" | "pagination.cursor" => cursor = Some(value),
            _ => {}
        }
    }
    let count = count.ok_or((
        "pagination",
        "pagination is required: pass pagination[count] (1 to 200) and optionally pagination[cursor]",
    ))?;
    let count = count
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|c| (1..=MAX_COUNT).contains(c))
        .ok_or((
            "pagination.count",
            "pagination.count must be an integer between 1 and 200",
        ))?;
    let offset = match cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => decode_cursor(c).ok_or((
            "pagination.cursor",
            "pagination.cursor is not a valid cursor",
        ))?,
    };
    Ok(PageIn { count, offset })
}

/// Answers one page of a list of `total` items; `items` turns the page range into views.
fn list_page<T: Serialize>(
    key: &str,
    total: usize,
    query: QueryPairs,
    endless: Option<Extension<Endless>>,
    items: impl FnOnce(Range<usize>) -> Vec<T>,
) -> Response {
    let page = match parse_page(query) {
        Ok(p) => p,
        Err((field, message)) => return validation(field, message),
    };
    let start = page.offset.min(total);
    let end = page.offset.saturating_add(page.count).min(total);
    let current = encode_cursor(page.offset);
    let next = match endless {
        Some(Extension(Endless { repeat: true })) => Some(current.clone()),
        Some(Extension(Endless { repeat: false })) => {
            Some(encode_cursor(page.offset.saturating_add(page.count)))
        }
        None if end < total => Some(encode_cursor(end)),
        None => None,
    };
    let previous = (page.offset > 0).then(|| encode_cursor(page.offset.saturating_sub(page.count)));
    let out = PageOut {
        current,
        next,
        previous,
        total_entries: total,
    };
    ok(data_body(key, &items(start..end), Some(&out)))
}

#[derive(Serialize)]
struct MinimalUser<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
}

impl<'a> From<&'a User> for MinimalUser<'a> {
    fn from(u: &'a User) -> Self {
        MinimalUser {
            id: &u.id,
            name: &u.name,
            email: &u.email,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupView<'a> {
    id: &'a str,
    name: &'a str,
    member_count: usize,
    permissions: &'a [Permission],
}

impl<'a> From<&'a Group> for GroupView<'a> {
    fn from(g: &'a Group) -> Self {
        GroupView {
            id: &g.id,
            name: &g.name,
            member_count: g.member_count(),
            permissions: &g.permissions,
        }
    }
}

type Shr = State<Arc<Shared>>;
type Endlessness = Option<Extension<Endless>>;
type IdPath = Result<Path<String>, PathRejection>;

async fn get_workspace(State(sh): Shr) -> Response {
    ok(data_body("workspace", &sh.read().state.workspace, None))
}

async fn list_roles(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let roles = &sim.state.roles;
    list_page("roles", roles.len(), q, e, |r| roles[r].iter().collect())
}

async fn list_users(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let users = &sim.state.users;
    list_page("users", users.len(), q, e, |r| users[r].iter().collect())
}

async fn get_user(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("user", sim.state.user(&id))
}

async fn list_invites(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let invites = &sim.state.invites;
    list_page("invites", invites.len(), q, e, |r| {
        invites[r].iter().collect()
    })
}

async fn list_groups(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let groups = &sim.state.groups;
    list_page("userGroups", groups.len(), q, e, |r| {
        groups[r].iter().map(GroupView::from).collect()
    })
}

async fn get_group(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("userGroup", sim.state.group(&id).map(GroupView::from))
}

async fn list_group_users(State(sh): Shr, id: IdPath, q: QueryPairs, e: Endlessness) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let state = &sim.state;
    let Some(group) = state.group(&id) else {
        return not_found_response();
    };
    list_page("users", group.members.len(), q, e, |r| {
        group.members[r]
            .iter()
            .filter_map(|m| state.user(m))
            .map(MinimalUser::from)
            .collect()
    })
}

async fn list_group_invites(State(sh): Shr, id: IdPath, q: QueryPairs, e: Endlessness) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let Some(group) = sim.state.group(&id) else {
        return not_found_response();
    };
    list_page("emails", group.invites.len(), q, e, |r| {
        group.invites[r].iter().collect()
    })
}

async fn list_sources(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let sources = &sim.state.sources;
    list_page("sources", sources.len(), q, e, |r| {
        sources[r].iter().collect()
    })
}

async fn get_source(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("source", sim.state.source(&id))
}

async fn list_labels(State(sh): Shr) -> Response {
    ok(data_body("labels", &sh.read().state.labels, None))
}

/// `GET /audit-events`: newest first, filtered by `startTime` (inclusive), `endTime`
/// (inclusive, default now), `resourceId` and `resourceType`, paginated like every list.
async fn list_audit_events(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let pairs = match &q {
        Ok(Query(pairs)) => pairs.clone(),
        Err(_) => return validation("pagination", "Malformed query string"),
    };
    let mut filter = audit::Filter {
        start: None,
        end: chrono::Utc::now(),
        resource_id: None,
        resource_type: None,
    };
    for (key, value) in pairs {
        let time = || {
            chrono::DateTime::parse_from_rfc3339(value.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok()
        };
        let invalid = |field| validation(field, "must be an ISO-8601 timestamp");
        match key.as_str() {
            "startTime" => match time() {
                Some(t) => filter.start = Some(t),
                None => return invalid("startTime"),
            },
            "endTime" => match time() {
                Some(t) => filter.end = t,
                None => return invalid("endTime"),
            },
            "resourceId" => filter.resource_id = Some(value),
            "resourceType" => filter.resource_type = Some(value),
            _ => {}
        }
    }
    let sim = sh.read();
    let events = sim.audit.query(&filter);
    list_page("events", events.len(), q, e, |r| events[r].to_vec())
}

async fn list_destinations(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.destinations;
    list_page("destinations", items.len(), q, e, |r| {
        items[r].iter().collect()
    })
}

/// `{"data": {key: item}}` for a found item, else Segment's 404.
/// `POST /regulations`: validated like Segment's (`regulationType` from the enum, `subjectType`
/// `USER_ID` or `OBJECT_ID`, non-empty `subjectIds`), else 422.
async fn post_regulation(State(sh): Shr, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return validation("body", "the body is not JSON");
    };
    let recorded = match Regulations::validate(&body) {
        Ok(r) => r,
        Err((field, message)) => return validation(field, &message),
    };
    let destinations = sh
        .read()
        .state
        .destinations
        .iter()
        .map(|d| (d.id.clone(), d.name.clone()))
        .collect();
    let id = lock(&sh.regulations).create(recorded, destinations);
    ok(data_body("regulateId", &id, None))
}

async fn get_regulation(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let workspace_id = sh.read().state.workspace.id.clone();
    one("regulation", lock(&sh.regulations).get(&id, &workspace_id))
}

/// `GET /regulations`, filtered by `status` and `regulationTypes` (repeated, comma-separated
/// or `regulationTypes[i]`), paginated.
async fn list_regulations(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let pairs = match &q {
        Ok(Query(pairs)) => pairs.clone(),
        Err(_) => return validation("pagination", "Malformed query string"),
    };
    let mut status = None;
    let mut types: Option<Vec<String>> = None;
    for (key, value) in pairs {
        if key == "status" {
            status = Some(value);
        } else if key == "regulationTypes" || key.starts_with("regulationTypes[") {
            types
                .get_or_insert_with(Vec::new)
                .extend(value.split(',').map(|t| t.trim().to_owned()));
        }
    }
    let entries = lock(&sh.regulations).list(status.as_deref(), types.as_deref());
    list_page("regulations", entries.len(), q, e, |r| {
        entries[r].iter().collect()
    })
}

fn one(key: &str, item: Option<impl Serialize>) -> Response {
    match item {
        Some(item) => ok(data_body(key, &item, None)),
        None => not_found_response(),
    }
}

async fn get_destination(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one(
        "destination",
        sim.state
            .destination_position(&id)
            .map(|i| &sim.state.destinations[i]),
    )
}

/// `WarehouseV1`: the warehouse without its connections, which have their own route.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WarehouseView<'a> {
    id: &'a str,
    metadata: &'a serde_json::Value,
    workspace_id: &'a str,
    enabled: bool,
    settings: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> From<&'a Warehouse> for WarehouseView<'a> {
    fn from(w: &'a Warehouse) -> Self {
        WarehouseView {
            id: &w.id,
            metadata: &w.metadata,
            workspace_id: &w.workspace_id,
            enabled: w.enabled,
            settings: &w.settings,
        }
    }
}

async fn list_warehouses(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.warehouses;
    list_page("warehouses", items.len(), q, e, |r| {
        items[r].iter().map(WarehouseView::from).collect()
    })
}

async fn get_warehouse(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one(
        "warehouse",
        sim.state
            .warehouse_position(&id)
            .map(|i| WarehouseView::from(&sim.state.warehouses[i])),
    )
}

/// A page of the sources whose ids are `ids` (full `SourceV1` objects, as the API answers).
fn sources_page(state: &WorkspaceState, ids: &[String], q: QueryPairs, e: Endlessness) -> Response {
    list_page("sources", ids.len(), q, e, |r| {
        ids[r].iter().filter_map(|id| state.source(id)).collect()
    })
}

async fn list_warehouse_sources(
    State(sh): Shr,
    id: IdPath,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let state = &sim.state;
    match state.warehouse_position(&id) {
        Some(i) => sources_page(state, &state.warehouses[i].connected_source_ids, q, e),
        None => not_found_response(),
    }
}

/// `ListFunctionItemV1`: a function without its code, settings and deployment fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionItem<'a> {
    id: &'a str,
    resource_type: &'a str,
    created_at: &'a str,
    created_by: &'a str,
    display_name: &'a str,
    description: &'a str,
    logo_url: &'a str,
    catalog_id: &'a str,
}

impl<'a> From<&'a Function> for FunctionItem<'a> {
    fn from(f: &'a Function) -> Self {
        FunctionItem {
            id: &f.id,
            resource_type: &f.resource_type,
            created_at: &f.created_at,
            created_by: &f.created_by,
            display_name: &f.display_name,
            description: &f.description,
            logo_url: &f.logo_url,
            catalog_id: &f.catalog_id,
        }
    }
}

async fn list_functions(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    // `resourceType` is required, and only the known types are accepted.
    let resource_type = match &q {
        Ok(Query(pairs)) => pairs
            .iter()
            .find(|(k, _)| k == "resourceType")
            .map(|(_, v)| v.clone()),
        Err(_) => None,
    };
    let Some(resource_type) = resource_type else {
        return validation("resourceType", "resourceType is required");
    };
    if !super::generate::FUNCTION_TYPES.contains(&resource_type.as_str()) {
        return validation(
            "resourceType",
            "resourceType must be one of DESTINATION, SOURCE, INSERT_DESTINATION, INSERT_SOURCE, INSERT_TRANSFORMATION",
        );
    }
    let sim = sh.read();
    let of_type: Vec<&Function> = sim
        .state
        .functions
        .iter()
        .filter(|f| f.resource_type == resource_type)
        .collect();
    list_page("functions", of_type.len(), q, e, |r| {
        of_type[r].iter().map(|f| FunctionItem::from(*f)).collect()
    })
}

async fn get_function(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one(
        "function",
        sim.state
            .function_position(&id)
            .map(|i| &sim.state.functions[i]),
    )
}

/// `TrackingPlanV1`: the plan without its connections, which have their own route.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrackingPlanView<'a> {
    id: &'a str,
    name: &'a str,
    slug: &'a str,
    description: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
}

impl<'a> From<&'a TrackingPlan> for TrackingPlanView<'a> {
    fn from(t: &'a TrackingPlan) -> Self {
        TrackingPlanView {
            id: &t.id,
            name: &t.name,
            slug: &t.slug,
            description: &t.description,
            kind: &t.kind,
            created_at: &t.created_at,
            updated_at: &t.updated_at,
        }
    }
}

async fn list_tracking_plans(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.tracking_plans;
    list_page("trackingPlans", items.len(), q, e, |r| {
        items[r].iter().map(TrackingPlanView::from).collect()
    })
}

async fn get_tracking_plan(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one(
        "trackingPlan",
        sim.state
            .tracking_plan_position(&id)
            .map(|i| TrackingPlanView::from(&sim.state.tracking_plans[i])),
    )
}

async fn list_tracking_plan_sources(
    State(sh): Shr,
    id: IdPath,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let state = &sim.state;
    match state.tracking_plan_position(&id) {
        Some(i) => sources_page(state, &state.tracking_plans[i].source_ids, q, e),
        None => not_found_response(),
    }
}

fn control_json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("control answers always serialise");
    (status, [(CONTENT_TYPE, PLAIN_JSON)], body).into_response()
}

fn bad_body(e: &serde_json::Error) -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationFailure",
        &format!("Invalid request body: {e}"),
        None,
        None,
    )
}

/// Body of `POST /_simulator/mutations`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MutationRequest {
    Random { random: usize },
    Unaudited { unaudited: Mutation },
    One(Mutation),
}

async fn post_mutations(State(sh): Shr, body: Bytes) -> Response {
    let request: MutationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(&e),
    };
    let descriptions = match request {
        MutationRequest::Random { random } if random > MAX_RANDOM_PER_REQUEST => {
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ValidationFailure",
                &format!("at most {MAX_RANDOM_PER_REQUEST} random mutations per request"),
                Some("random"),
                None,
            );
        }
        MutationRequest::Random { random } => (0..random).map(|_| sh.random_mutation()).collect(),
        MutationRequest::One(m) => match sh.apply(m, true) {
            Ok(d) => vec![d],
            Err(e) => return sim_error_response(&e),
        },
        MutationRequest::Unaudited { unaudited } => match sh.apply(unaudited, false) {
            Ok(d) => vec![d],
            Err(e) => return sim_error_response(&e),
        },
    };
    for d in &descriptions {
        tracing::info!(target: "segwatch::simulator", "{d}");
    }
    control_json(StatusCode::OK, &descriptions)
}

async fn post_shuffle(State(sh): Shr) -> Response {
    sh.shuffle();
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `POST /_simulator/faults`: a fault object or a spec string.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FaultRequest {
    Spec(String),
    Fault(Fault),
}

async fn post_fault(State(sh): Shr, body: Bytes) -> Response {
    let fault = match serde_json::from_slice(&body) {
        Ok(FaultRequest::Fault(f)) => f,
        Ok(FaultRequest::Spec(spec)) => match spec.parse::<Fault>() {
            Ok(f) => f,
            Err(e) => return sim_error_response(&e),
        },
        Err(e) => return bad_body(&e),
    };
    tracing::info!(target: "segwatch::simulator", fault = %fault, "fault injected");
    let spec = fault.to_string();
    sh.inject(fault);
    control_json(StatusCode::CREATED, &serde_json::json!({ "fault": spec }))
}

async fn delete_faults(State(sh): Shr) -> Response {
    sh.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

/// `PUT /_simulator/plan`: a plan name such as `"team"`.
async fn put_plan(State(sh): Shr, body: Bytes) -> Response {
    let name: String = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return bad_body(&e),
    };
    match name.parse::<Plan>() {
        Ok(plan) => {
            tracing::info!(target: "segwatch::simulator", %plan, "plan changed");
            sh.set_plan(plan);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => validation("plan", &e),
    }
}

/// Body of `POST /_simulator/unavailable`.
#[derive(serde::Deserialize)]
struct UnavailableRequest {
    path: String,
    #[serde(default)]
    status: Option<u16>,
}

/// `POST /_simulator/unavailable`: `{"path": "/functions", "status": 404}`; a `null` or
/// absent status makes the path available again.
async fn post_unavailable(State(sh): Shr, body: Bytes) -> Response {
    let request: UnavailableRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(&e),
    };
    if let Some(status) = request.status
        && let Err(e) = shape::unavailable_status(status)
    {
        return validation("status", &e);
    }
    sh.set_unavailable(&request.path, request.status);
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `POST /_simulator/releases`: a spec string or a release object.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ReleaseRequest {
    Spec(String),
    Release(Release),
}

async fn post_release(State(sh): Shr, body: Bytes) -> Response {
    let parsed = match serde_json::from_slice(&body) {
        Ok(ReleaseRequest::Spec(spec)) => spec.parse::<Release>(),
        Ok(ReleaseRequest::Release(r)) => Release::new(&r.path, &r.field, r.value),
        Err(e) => return bad_body(&e),
    };
    let release = match parsed {
        Ok(r) => r,
        Err(e) => return sim_error_response(&e),
    };
    tracing::info!(target: "segwatch::simulator", %release, "API release");
    let spec = release.to_string();
    sh.add_release(release);
    control_json(StatusCode::CREATED, &serde_json::json!({ "release": spec }))
}

async fn delete_releases(State(sh): Shr) -> Response {
    sh.clear_releases();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_races(State(sh): Shr) -> Response {
    control_json(StatusCode::OK, &sh.races())
}

async fn get_state(State(sh): Shr) -> Response {
    let sim = sh.read();
    control_json(StatusCode::OK, &sim.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_match_segment_examples() {
        assert_eq!(encode_cursor(0), "MA==");
        assert_eq!(encode_cursor(3), "Mw==");
        assert_eq!(decode_cursor("Mw=="), Some(3));
        assert_eq!(decode_cursor(&encode_cursor(123_456)), Some(123_456));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&BASE64.encode("abc")), None);
    }

    #[test]
    fn paginated_paths() {
        for p in [
            "/roles",
            "/users",
            "/invites",
            "/groups",
            "/sources",
            "/groups/g1/users",
            "/groups/g1/invites",
            "/audit-events",
            "/destinations",
            "/warehouses",
            "/warehouses/w1/connected-sources",
            "/functions",
            "/tracking-plans",
            "/tracking-plans/tp1/sources",
            "/regulations",
        ] {
            assert!(is_paginated(p), "{p}");
        }
        for p in [
            "/",
            "/labels",
            "/users/u1",
            "/groups/g1",
            "/sources/s1",
            "/users/",
            "/destinations/d1",
            "/functions/f1",
            "/tracking-plans/tp1",
        ] {
            assert!(!is_paginated(p), "{p}");
        }
    }

    #[test]
    fn absurd_windows_do_not_overflow() {
        let mut limiter = Limiter::new(Some(RateLimit {
            requests: 1,
            window: Duration::MAX,
        }));
        let quota = limiter.consume(Instant::now());
        let response = with_quota(StatusCode::OK.into_response(), &quota);
        assert!(response.headers().contains_key("x-ratelimit-reset"));
    }

    #[test]
    fn limiter_counts_a_fixed_window() {
        let mut limiter = Limiter::new(Some(RateLimit {
            requests: 2,
            window: Duration::from_secs(60),
        }));
        let t0 = Instant::now();
        assert!(!limiter.consume(t0).exceeded);
        let q = limiter.consume(t0);
        assert!(!q.exceeded);
        assert_eq!(q.remaining, 0);
        let q = limiter.consume(t0 + Duration::from_secs(1));
        assert!(q.exceeded);
        assert_eq!(q.consumed, 3);
        assert!(q.reset_in <= Duration::from_secs(59));
        let q = limiter.consume(t0 + Duration::from_secs(61));
        assert!(!q.exceeded);
        assert_eq!((q.consumed, q.remaining), (1, 1));
    }
}
