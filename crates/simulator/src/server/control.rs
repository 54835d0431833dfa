//! The bearer-protected `/_simulator` control routes that drive a separate process.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::faults::Fault;
use crate::mutations::Mutation;
use crate::shape::{self, Plan, Release};

use super::responses::{error_response, sim_error_response, validation};
use super::routes::Shr;
use super::{MAX_RANDOM_PER_REQUEST, PLAIN_JSON};

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

pub(super) async fn post_mutations(State(sh): Shr, body: Bytes) -> Response {
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

pub(super) async fn post_shuffle(State(sh): Shr) -> Response {
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

pub(super) async fn post_fault(State(sh): Shr, body: Bytes) -> Response {
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

pub(super) async fn delete_faults(State(sh): Shr) -> Response {
    sh.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

/// `PUT /_simulator/plan`: a plan name such as `"team"`.
pub(super) async fn put_plan(State(sh): Shr, body: Bytes) -> Response {
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
pub(super) async fn post_unavailable(State(sh): Shr, body: Bytes) -> Response {
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

pub(super) async fn post_release(State(sh): Shr, body: Bytes) -> Response {
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

pub(super) async fn delete_releases(State(sh): Shr) -> Response {
    sh.clear_releases();
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn get_races(State(sh): Shr) -> Response {
    control_json(StatusCode::OK, &sh.races())
}

pub(super) async fn get_state(State(sh): Shr) -> Response {
    let sim = sh.read();
    control_json(StatusCode::OK, &sim.state)
}
