//! The daemon's operator endpoints: `/healthz` and `/metrics` (Prometheus text format).
//!
//! Both read the database (read-only, per request) so they report what is stored, whatever the
//! daemon's memory says; API request counters come from the live client.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};

use crate::segment::SegmentClient;
use crate::store::{Store, StoreMetrics};

/// What the endpoints read.
pub struct HealthState {
    /// The database file.
    pub db: PathBuf,
    /// The workspace label.
    pub workspace: String,
    /// Longer than this since the last complete poll is unhealthy.
    pub max_age: Duration,
    /// The daemon's current client (replaced on reload), for request counters.
    pub client: RwLock<SegmentClient>,
}

/// Serves the endpoints on `listen` until the runtime stops.
pub async fn serve(listen: SocketAddr, state: Arc<HealthState>) -> std::io::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    });
    Ok(addr)
}

fn read(state: &HealthState) -> Result<StoreMetrics, String> {
    let store = Store::open_read_only(&state.db).map_err(|e| e.to_string())?;
    let Some(workspace) = store
        .find_workspace(&state.workspace)
        .map_err(|e| e.to_string())?
    else {
        return Ok(StoreMetrics::default());
    };
    store.metrics(workspace).map_err(|e| e.to_string())
}

fn age_secs(at: Option<&str>, now: DateTime<Utc>) -> Option<f64> {
    let at = DateTime::parse_from_rfc3339(at?).ok()?;
    Some((now - at.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0)
}

async fn healthz(State(state): State<Arc<HealthState>>) -> impl IntoResponse {
    let now = Utc::now();
    let (healthy, body) = match read(&state) {
        Err(e) => (
            false,
            serde_json::json!({"status": "unhealthy", "reason": format!("cannot read the database: {e}")}),
        ),
        Ok(m) => {
            let age = age_secs(m.last_success_at.as_deref(), now);
            let max = state.max_age.as_secs_f64();
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
            let workspace = serde_json::json!({
                "name": state.workspace, "last_success": m.last_success_at, "age_secs": age,
                "last_poll": m.last_poll_status, "reason": reason,
            });
            let healthy = reason.is_none();
            (
                healthy,
                serde_json::json!({"status": if healthy { "ok" } else { "unhealthy" }, "workspaces": [workspace]}),
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
    let m = match read(&state) {
        Ok(m) => m,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    };
    let stats = state
        .client
        .read()
        .expect("the client lock is never poisoned")
        .stats();
    let ws = escape(&state.workspace);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{workspace=\"{ws}\"{labels}}} {value}");
        }
    };
    let labelled = |label: &str, rows: &[(String, i64)]| -> Vec<(String, f64)> {
        rows.iter()
            .map(|(k, v)| (format!(",{label}=\"{}\"", escape(k)), *v as f64))
            .collect()
    };
    family(
        "segwatch_polls_total",
        "counter",
        "Polls by outcome.",
        &labelled("outcome", &m.polls_by_status),
    );
    family(
        "segwatch_last_poll_duration_seconds",
        "gauge",
        "Wall time of the last complete poll.",
        &m.last_success_duration_ms
            .map(|ms| vec![(String::new(), ms as f64 / 1000.0)])
            .unwrap_or_default(),
    );
    family(
        "segwatch_seconds_since_last_success",
        "gauge",
        "Time since the last complete poll finished.",
        &age_secs(m.last_success_at.as_deref(), Utc::now())
            .map(|a| vec![(String::new(), a)])
            .unwrap_or_default(),
    );
    family(
        "segwatch_resources",
        "gauge",
        "Resources in the last complete snapshot, by kind.",
        &labelled("kind", &m.resources_by_kind),
    );
    family(
        "segwatch_open_findings",
        "gauge",
        "Open compliance findings by severity.",
        &labelled("severity", &m.open_findings_by_severity),
    );
    family(
        "segwatch_deliveries",
        "gauge",
        "Alert deliveries by status.",
        &labelled("status", &m.deliveries_by_status),
    );
    family(
        "segwatch_api_requests_total",
        "counter",
        "Segment API requests since start.",
        &[(String::new(), stats.requests as f64)],
    );
    family(
        "segwatch_api_rate_limited_total",
        "counter",
        "Segment API answers of 429 since start.",
        &[(String::new(), stats.rate_limited as f64)],
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
