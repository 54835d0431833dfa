//! The daemon's operator endpoints: `/healthz` and `/metrics` (Prometheus text format).
//!
//! Both read the database (read-only, per request) so they report what is stored, whatever the
//! daemon's memory says; API request counters come from the live client.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use segwatch_api::segment::SegmentClient;
use segwatch_core::time::Timestamp;
use segwatch_store::{Store, StoreMetrics};

/// What the endpoints read.
pub struct HealthState {
    /// The database file.
    pub db: PathBuf,
    /// Longer than this since the last complete poll is unhealthy.
    pub max_age: Duration,
    /// Each workspace's label and current client (replaced on reload), for request counters.
    pub workspaces: RwLock<Vec<(String, SegmentClient)>>,
    /// Polls finished since start, by workspace and outcome (`complete`, `failed`).
    pub polls: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The workspaces paused in the configuration (replaced on reload): reported as `paused`,
    /// never unhealthy.
    pub paused: RwLock<BTreeSet<String>>,
}

impl HealthState {
    /// State for `workspaces` (label, client) stored in `db`.
    pub fn new(db: PathBuf, max_age: Duration, workspaces: Vec<(String, SegmentClient)>) -> Self {
        HealthState {
            db,
            max_age,
            workspaces: RwLock::new(workspaces),
            polls: Mutex::new(BTreeMap::new()),
            paused: RwLock::new(BTreeSet::new()),
        }
    }

    /// Replaces the set of paused workspaces.
    pub fn set_paused(&self, names: impl IntoIterator<Item = String>) {
        *self
            .paused
            .write()
            .expect("the paused lock is never poisoned") = names.into_iter().collect();
    }

    fn paused(&self) -> BTreeSet<String> {
        self.paused
            .read()
            .expect("the paused lock is never poisoned")
            .clone()
    }

    /// Counts a finished poll of `workspace`.
    pub fn count_poll(&self, workspace: &str, complete: bool) {
        let outcome = if complete { "complete" } else { "failed" };
        *self
            .polls
            .lock()
            .expect("the counter lock is never poisoned")
            .entry((workspace.to_string(), outcome))
            .or_default() += 1;
    }

    fn workspaces(&self) -> Vec<(String, SegmentClient)> {
        self.workspaces
            .read()
            .expect("the workspace lock is never poisoned")
            .clone()
    }
}

/// Serves the endpoints on `listen` until the runtime stops.
pub async fn serve(listen: SocketAddr, state: Arc<HealthState>) -> std::io::Result<SocketAddr> {
    serve_guarded(listen, state, None).await
}

/// Serves the endpoints on `listen` until the runtime stops; with a `token`, a request without
/// `Authorization: Bearer <token>` gets 401. Warns when `listen` is not a loopback address:
/// the endpoints name the workspaces, their failures and their backlog.
pub async fn serve_guarded(
    listen: SocketAddr,
    state: Arc<HealthState>,
    token: Option<SecretString>,
) -> std::io::Result<SocketAddr> {
    if !listen.ip().is_loopback() {
        if token.is_some() {
            tracing::warn!(
                %listen,
                "/healthz and /metrics listen beyond this host over plain HTTP: the bearer \
                 token crosses the network in clear; keep the address on a trusted network"
            );
        } else {
            tracing::warn!(
                %listen,
                "/healthz and /metrics listen beyond this host without a token: anyone who \
                 reaches the address reads workspace names, poll failures and delivery backlog; \
                 set [health] token_file (or token_env), or listen on 127.0.0.1"
            );
        }
    }
    let mut app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Some(token) = token {
        // Compared as SHA-256 digests, so the comparison's timing says nothing of the token.
        let expected: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        app = app.layer(axum::middleware::from_fn(move |request, next| {
            require_bearer(expected, request, next)
        }));
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    });
    Ok(addr)
}

/// Passes a request on only with `Authorization: Bearer <token>` whose SHA-256 is `expected`.
async fn require_bearer(
    expected: [u8; 32],
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if <[u8; 32]>::from(Sha256::digest(given.trim().as_bytes())) == expected => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required ([health] token)\n",
        )
            .into_response(),
    }
}

/// Each workspace's stored metrics (empty for one never polled).
fn read(state: &HealthState, names: &[String]) -> Result<Vec<StoreMetrics>, String> {
    let store = Store::open_read_only(&state.db).map_err(|e| e.to_string())?;
    names
        .iter()
        .map(
            |name| match store.find_workspace(name).map_err(|e| e.to_string())? {
                Some(id) => store.metrics(id).map_err(|e| e.to_string()),
                None => Ok(StoreMetrics::default()),
            },
        )
        .collect()
}

fn age_secs(at: Option<Timestamp>, now: DateTime<Utc>) -> Option<f64> {
    Some((now - at?.as_datetime()).num_milliseconds() as f64 / 1000.0)
}

async fn healthz(State(state): State<Arc<HealthState>>) -> impl IntoResponse {
    let now = Utc::now();
    let names: Vec<String> = state.workspaces().into_iter().map(|(n, _)| n).collect();
    let paused = state.paused();
    let (healthy, body) = match read(&state, &names) {
        Err(e) => (
            false,
            serde_json::json!({"status": "unhealthy", "reason": format!("cannot read the database: {e}")}),
        ),
        Ok(all) => {
            let max = state.max_age.as_secs_f64();
            let mut healthy = true;
            let workspaces: Vec<serde_json::Value> = names
                .iter()
                .zip(&all)
                .map(|(name, m)| {
                    let age = age_secs(m.last_success_at, now);
                    if paused.contains(name) {
                        // Not polled on purpose: an old last success is expected, not a fault.
                        return serde_json::json!({
                            "name": name, "status": "paused", "last_success": m.last_success_at,
                            "age_secs": age, "last_poll": m.last_poll_status, "reason": null,
                        });
                    }
                    let reason = match age {
                        None => Some("no poll has completed yet".to_string()),
                        Some(a) if a > max => Some(format!(
                            "the last complete poll was {a:.0} s ago (limit {max:.0} s); last poll: {}{}",
                            m.last_poll_status.as_deref().unwrap_or("none"),
                            m.last_poll_error
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        )),
                        Some(_) => None,
                    };
                    healthy &= reason.is_none();
                    // A feature the plan lacks is detail, not ill health: the rest is watched.
                    let not_read: serde_json::Map<String, serde_json::Value> = m
                        .kind_status
                        .iter()
                        .map(|(k, s)| (k.to_string(), serde_json::Value::String(s.to_string())))
                        .collect();
                    serde_json::json!({
                        "name": name,
                        "status": if reason.is_none() { "ok" } else { "unhealthy" },
                        "last_success": m.last_success_at, "age_secs": age,
                        "last_poll": m.last_poll_status, "reason": reason,
                        "kinds_not_read": not_read, "quarantined_items": m.quarantined,
                        // Apart from poll health: a stuck sink does not make polls look failed.
                        "deliveries": m.undelivered.iter().map(|(sink, pending, oldest)| {
                            (sink.clone(), serde_json::json!({
                                "undelivered": pending,
                                "oldest_undelivered_age_secs": age_secs(Some(*oldest), now),
                            }))
                        }).collect::<serde_json::Map<String, serde_json::Value>>(),
                    })
                })
                .collect();
            (
                healthy,
                serde_json::json!({"status": if healthy { "ok" } else { "unhealthy" }, "workspaces": workspaces}),
            )
        }
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

async fn metrics(State(state): State<Arc<HealthState>>) -> impl IntoResponse {
    let workspaces = state.workspaces();
    let names: Vec<String> = workspaces.iter().map(|(n, _)| n.clone()).collect();
    let all = match read(&state, &names) {
        Ok(m) => m,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    };
    let polls = state
        .polls
        .lock()
        .expect("the counter lock is never poisoned")
        .clone();
    let now = Utc::now();
    let mut out = String::new();
    // One family at a time, with a row per workspace (and label value): Prometheus wants each
    // family's samples together, after its HELP and TYPE lines.
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_workspace = |f: &dyn Fn(&StoreMetrics) -> Option<f64>| -> Vec<(String, f64)> {
        names
            .iter()
            .zip(&all)
            .filter_map(|(n, m)| f(m).map(|v| (format!("workspace=\"{}\"", escape(n)), v)))
            .collect()
    };
    let labelled = |label: &str, rows: &dyn Fn(&StoreMetrics) -> &Vec<(String, i64)>| {
        names
            .iter()
            .zip(&all)
            .flat_map(|(n, m)| {
                rows(m).iter().map(move |(k, v)| {
                    (
                        format!("workspace=\"{}\",{label}=\"{}\"", escape(n), escape(k)),
                        *v as f64,
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    let mut poll_rows = Vec::new();
    for n in &names {
        for outcome in ["complete", "failed"] {
            let count = polls.get(&(n.clone(), outcome)).copied().unwrap_or(0);
            poll_rows.push((
                format!("workspace=\"{}\",outcome=\"{outcome}\"", escape(n)),
                count as f64,
            ));
        }
    }
    family(
        "segwatch_polls_total",
        "counter",
        "Polls finished since the daemon started, by outcome.",
        poll_rows,
    );
    let paused = state.paused();
    family(
        "segwatch_workspace_paused",
        "gauge",
        "1 if the workspace is paused in the configuration (kept, not polled), else 0.",
        names
            .iter()
            .map(|n| {
                let value = if paused.contains(n) { 1.0 } else { 0.0 };
                (format!("workspace=\"{}\"", escape(n)), value)
            })
            .collect(),
    );
    family(
        "segwatch_stored_polls",
        "gauge",
        "Polls recorded in the database, by status (retention prunes old failed ones).",
        labelled("status", &|m| &m.polls_by_status),
    );
    family(
        "segwatch_last_poll_duration_seconds",
        "gauge",
        "Wall time of the last complete poll.",
        per_workspace(&|m| m.last_success_duration_ms.map(|ms| ms as f64 / 1000.0)),
    );
    family(
        "segwatch_seconds_since_last_success",
        "gauge",
        "Time since the last complete poll finished.",
        per_workspace(&|m| age_secs(m.last_success_at, now)),
    );
    family(
        "segwatch_resources",
        "gauge",
        "Resources in the last complete snapshot, by kind.",
        labelled("kind", &|m| &m.resources_by_kind),
    );
    family(
        "segwatch_open_findings",
        "gauge",
        "Open compliance findings by severity.",
        labelled("severity", &|m| &m.open_findings_by_severity),
    );
    family(
        "segwatch_deliveries",
        "gauge",
        "Alert deliveries by status.",
        labelled("status", &|m| &m.deliveries_by_status),
    );
    family(
        "segwatch_kind_not_read",
        "gauge",
        "Kinds the last complete poll could not read in full (status unavailable: the plan or \
         token lacks the feature; incomplete: some items quarantined).",
        names
            .iter()
            .zip(&all)
            .flat_map(|(n, m)| {
                m.kind_status.iter().map(move |(k, s)| {
                    (
                        format!(
                            "workspace=\"{}\",kind=\"{k}\",status=\"{}\"",
                            escape(n),
                            s.label()
                        ),
                        1.0,
                    )
                })
            })
            .collect(),
    );
    let undelivered = |f: &dyn Fn(i64, Timestamp) -> Option<f64>| -> Vec<(String, f64)> {
        names
            .iter()
            .zip(&all)
            .flat_map(|(n, m)| {
                m.undelivered
                    .iter()
                    .filter_map(move |(sink, count, oldest)| {
                        f(*count, *oldest).map(|v| {
                            (
                                format!("workspace=\"{}\",sink=\"{}\"", escape(n), escape(sink)),
                                v,
                            )
                        })
                    })
            })
            .collect()
    };
    family(
        "segwatch_undelivered",
        "gauge",
        "Deliveries not yet confirmed by their sink (pending or to be retried), by sink.",
        undelivered(&|count, _| Some(count as f64)),
    );
    family(
        "segwatch_oldest_undelivered_age_seconds",
        "gauge",
        "Age of the oldest delivery a sink has not confirmed yet.",
        undelivered(&|_, oldest| age_secs(Some(oldest), now)),
    );
    family(
        "segwatch_quarantined_items",
        "gauge",
        "Items from the API that could not be read, kept in the quarantine table.",
        per_workspace(&|m| Some(m.quarantined as f64)),
    );
    family(
        "segwatch_last_poll_confirm_requests",
        "gauge",
        "Requests the last complete poll spent confirming resources missing from their lists.",
        per_workspace(&|m| m.last_confirm_requests.map(|n| n as f64)),
    );
    let stats: Vec<(String, segwatch_api::segment::ClientStats)> = workspaces
        .iter()
        .map(|(n, c)| (format!("workspace=\"{}\"", escape(n)), c.stats()))
        .collect();
    family(
        "segwatch_api_requests_total",
        "counter",
        "Segment API requests since start.",
        stats
            .iter()
            .map(|(l, s)| (l.clone(), s.requests as f64))
            .collect(),
    );
    family(
        "segwatch_api_rate_limited_total",
        "counter",
        "Segment API answers of 429 since start.",
        stats
            .iter()
            .map(|(l, s)| (l.clone(), s.rate_limited as f64))
            .collect(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
