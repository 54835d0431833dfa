//! The Profile API on the simulator: `GET /v1/spaces/{space}/collections/users/profiles/{id}/
//! {metadata|traits|external_ids|events}`, Basic auth with the space's access secret, cursor
//! pagination (`limit`, `next`; `cursor.{url,has_more,next,limit}`) and the documented
//! `{"error":{"code","message"}}` bodies.
//!
//! Every simulated user has a profile, derived from it deterministically: its user id, email
//! and `anon-<id>` anonymous id as external ids, a dozen traits, and 120 to 319 events (several
//! pages at the maximum `limit`). Faults apply as on the Public API routes, except
//! `endless-cursor`, which only concerns Public API lists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::faults::FaultKind;
use super::server::{Shared, constant_time_eq, decode_cursor, encode_cursor, lock, truncate_body};
use super::state::User;

/// Default `limit` when the request gives none, as documented.
const DEFAULT_LIMIT: usize = 10;
/// Largest accepted `limit`.
const MAX_LIMIT: usize = 200;
/// Newest simulated event time: fixed, so answers are reproducible.
const NEWEST_EVENT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const EVENT_NAMES: [&str; 6] = [
    "Page Viewed",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Signed In",
];

/// The space the simulated Profile API serves and the secret that opens it.
#[derive(Clone)]
pub(crate) struct ProfileAuth {
    pub(crate) space_id: String,
    pub(crate) secret: SecretString,
}

/// What the simulator holds on one user's profile, for tests to compare an export with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSummary {
    /// The canonical `use_…` id.
    pub segment_id: String,
    /// The user id.
    pub user_id: String,
    /// The email.
    pub email: String,
    /// The anonymous id.
    pub anonymous_id: String,
    /// Number of traits.
    pub traits: usize,
    /// Number of external ids.
    pub external_ids: usize,
    /// Number of events.
    pub events: usize,
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn anonymous_id(user: &User) -> String {
    format!("anon-{}", user.id)
}

fn segment_id(user: &User) -> String {
    format!("use_{}", user.id)
}

fn event_count(user: &User) -> usize {
    120 + (fnv(&user.id) % 200) as usize
}

fn traits(user: &User) -> BTreeMap<&'static str, Value> {
    let h = fnv(&user.id);
    BTreeMap::from([
        ("user_id", json!(user.id)),
        ("email", json!(user.email)),
        ("name", json!(user.name)),
        (
            "plan",
            json!(["free", "team", "business"][(h % 3) as usize]),
        ),
        ("company", json!(format!("Company {}", h % 97))),
        (
            "city",
            json!(["Paris", "Austin", "Lagos", "Osaka"][(h % 4) as usize]),
        ),
        ("country", json!(["FR", "US", "NG", "JP"][(h % 4) as usize])),
        ("phone", json!(format!("+1555{:07}", h % 10_000_000))),
        ("newsletter", json!(h.is_multiple_of(2))),
        ("logins", json!(h % 500)),
        ("created_at", json!("2025-06-01T09:00:00Z")),
        ("last_seen_at", json!("2025-12-31T23:00:00Z")),
    ])
}

fn external_ids(user: &User) -> Vec<Value> {
    [
        ("user_id", user.id.clone()),
        ("email", user.email.clone()),
        ("anonymous_id", anonymous_id(user)),
    ]
    .into_iter()
    .map(|(kind, id)| {
        json!({
            "source_id": "src_sim_web",
            "collection": "users",
            "id": id,
            "type": kind,
            "created_at": "2025-06-01T09:00:00Z",
            "encoding": "none",
            "first_message_id": format!("msg_{}_first", user.id),
        })
    })
    .collect()
}

fn event(user: &User, k: usize) -> Value {
    let h = fnv(&user.id);
    let at = chrono::DateTime::from_timestamp(NEWEST_EVENT - (k as i64) * 420, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "external_ids": [{"collection": "users", "id": user.id, "type": "user_id", "source_id": "src_sim_web", "encoding": "none"}],
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "page": {"path": format!("/p/{}", (h as usize + k) % 50)}},
        "type": "track",
        "message_id": format!("msg_{}_{k:04}", user.id),
        "source_id": "src_sim_web",
        "timestamp": at,
        "properties": {"step": k},
        "event": EVENT_NAMES[(h as usize + k) % EVENT_NAMES.len()],
        "related": {"users": null},
    })
}

/// The summary of `user_id`'s profile, if the user exists.
pub(crate) fn summary(shared: &Shared, user_id: &str) -> Option<ProfileSummary> {
    let sim = shared.read();
    let user = sim.state.users.iter().find(|u| u.id == user_id)?;
    Some(ProfileSummary {
        segment_id: segment_id(user),
        user_id: user.id.clone(),
        email: user.email.clone(),
        anonymous_id: anonymous_id(user),
        traits: traits(user).len(),
        external_ids: external_ids(user).len(),
        events: event_count(user),
    })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn profile_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Profile was not found.")
}

/// The Profile API routes, behind their own gate (Basic auth, space, faults).
pub(super) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v1/spaces/{space}/collections/{collection}/profiles/{id}/{section}",
            get(profile_section),
        )
        .route_layer(middleware::from_fn_with_state(shared, profile_gate))
}

/// The user name of a Basic `Authorization` header.
fn basic_user(req: &Request) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(u, _)| u.to_owned()),
    )
}

async fn profile_gate(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    sh.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(pq) = req.uri().path_and_query() {
        sh.log_request(pq.as_str());
    }
    let auth = &sh.profiles;
    let authorized =
        basic_user(&req).is_some_and(|user| constant_time_eq(&user, auth.secret.expose_secret()));
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "The access token is missing or invalid.",
        );
    }
    let path = req.uri().path().to_owned();
    let space = path.split('/').nth(3).unwrap_or_default();
    if space != auth.space_id {
        return error(StatusCode::NOT_FOUND, "not_found", "Space was not found.");
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    let fault = lock(&sh.faults).select(&path, &query, true);
    match fault {
        // The Profile API has its own page shape and no Public API listing to race on.
        None
        | Some(
            FaultKind::EndlessCursor { .. }
            | FaultKind::PaginationRace { .. }
            | FaultKind::BadItem { .. }
            | FaultKind::BadEvent { .. },
        ) => next.run(req).await,
        Some(FaultKind::RateLimited { ms_before_next }) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Too many requests: the space's rate limit is exceeded.",
            );
            if ms_before_next >= 1000 {
                let secs = ms_before_next.div_ceil(1000).to_string();
                if let Ok(v) = secs.parse() {
                    response.headers_mut().insert(RETRY_AFTER, v);
                }
            }
            response
        }
        Some(FaultKind::ServerError { status }) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "internal_error",
            "Simulated server error",
        ),
        Some(FaultKind::ClientError { .. }) => error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "Simulated client error",
        ),
        Some(FaultKind::Slow { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            next.run(req).await
        }
        Some(FaultKind::MalformedJson) => truncate_body(next.run(req).await).await,
        Some(FaultKind::EndlessBody) => super::faults::endless_body(),
        Some(FaultKind::Trickle { interval_ms }) => {
            super::faults::trickle(next.run(req).await, interval_ms).await
        }
    }
}

async fn profile_section(
    State(sh): State<Arc<Shared>>,
    Path((space, collection, id, section)): Path<(String, String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "validation_error",
                "limit must be an integer between 1 and 200.",
            );
        }
    };
    let offset = match param("next") {
        None | Some("") => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(n) => n,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "next is not a valid cursor.",
                );
            }
        },
    };
    let sim = sh.read();
    let user = (collection == "users")
        .then(|| {
            sim.state.users.iter().find(|u| match id.split_once(':') {
                Some(("user_id", v)) => u.id == v,
                Some(("email", v)) => u.email == v,
                Some(("anonymous_id", v)) => anonymous_id(u) == v,
                None => segment_id(u) == id,
                _ => false,
            })
        })
        .flatten();
    let Some(user) = user else {
        return profile_not_found();
    };
    let page_url = |next: &str| {
        format!(
            "/v1/spaces/{space}/collections/users/profiles/{}/{section}?limit={limit}&next={next}",
            segment_id(user)
        )
    };
    // One page of `total` records starting at `offset`, with its cursor.
    let cursor = |total: usize| {
        let end = (offset + limit).min(total);
        let has_more = end < total;
        let next = if has_more {
            encode_cursor(end)
        } else {
            String::new()
        };
        let url = page_url(&next);
        (
            offset.min(total)..end,
            json!({"url": url, "has_more": has_more, "next": next, "limit": limit}),
        )
    };
    let body = match section.as_str() {
        "metadata" => json!({
            "segment_id": segment_id(user),
            "metadata": {
                "created_at": "2025-06-01T09:00:00Z",
                "updated_at": "2025-12-31T23:00:00Z",
                "expires_at": null,
                "first_message_id": format!("msg_{}_first", user.id),
                "first_source_id": "src_sim_web",
                "last_message_id": format!("msg_{}_0000", user.id),
                "last_source_id": "src_sim_web",
            },
        }),
        "traits" => {
            let all = traits(user);
            let (range, cursor) = cursor(all.len());
            let page: serde_json::Map<String, Value> = all
                .into_iter()
                .skip(range.start)
                .take(range.len())
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            json!({"traits": page, "cursor": cursor})
        }
        "external_ids" => {
            let all = external_ids(user);
            let (range, cursor) = cursor(all.len());
            json!({"data": all[range].to_vec(), "cursor": cursor})
        }
        "events" => {
            let (range, cursor) = cursor(event_count(user));
            let data: Vec<Value> = range.map(|k| event(user, k)).collect();
            json!({"data": data, "cursor": cursor})
        }
        _ => {
            return error(StatusCode::NOT_FOUND, "not_found", "Route was not found.");
        }
    };
    ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
