//! The middleware in front of the routes: bearer auth, the rate limiter and its headers,
//! fault injection, plan refusals and API releases.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::RateLimit;
use crate::faults::FaultKind;
use crate::shape::{self, Refusal};

use super::pagination::decode_cursor;
use super::responses::{error_response, not_found_response, server_error, too_many_requests};
use super::{DEFAULT_WINDOW, MAX_RESET, Shared, UNLIMITED, lock};

/// A fixed-window request counter; the window starts at the first request after the previous
/// one ended.
pub(super) struct Limiter {
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
    pub(super) fn new(limit: Option<RateLimit>) -> Self {
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
            | "regulations"
            | "transformations"
            | "reverse-etl-models"]
            | ["groups", _, "users" | "invites"]
            | ["destination", _, "filters"]
            | ["destinations", _, "subscriptions"]
            | ["warehouses", _, "connected-sources"]
            | ["tracking-plans", _, "sources"]
    )
}

/// Marks a request whose list answer must keep handing out cursors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Endless {
    pub(super) repeat: bool,
}

pub(super) async fn api_gate(
    State(sh): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
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
        Some(FaultKind::EndlessBody) => crate::faults::endless_body(),
        Some(FaultKind::Trickle { interval_ms }) => {
            crate::faults::trickle(sh.released(&path, next.run(req).await).await, interval_ms).await
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
pub(super) async fn rewrite_json(
    response: Response,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Response {
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
pub(crate) async fn truncate_body(response: Response) -> Response {
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

pub(super) async fn control_gate(
    State(sh): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
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

pub(super) async fn not_found() -> Response {
    not_found_response()
}

pub(super) async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "Method not allowed",
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

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
            "/transformations",
            "/reverse-etl-models",
            "/destination/d1/filters",
            "/destinations/d1/subscriptions",
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
