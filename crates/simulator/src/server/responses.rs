//! Segment's response envelopes: `errors` for failures, `data` for answers.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::SimError;

use super::pagination::PageOut;
use super::{PLAIN_JSON, SEGMENT_JSON};

/// Segment's `errors` envelope.
pub(super) fn error_response(
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

pub(super) fn not_found_response() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Resource not found",
        None,
        None,
    )
}

pub(super) fn validation(field: &str, message: &str) -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationFailure",
        message,
        Some(field),
        None,
    )
}

pub(super) fn too_many_requests(ms_before_next: u64, consumed: u32) -> Response {
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

pub(super) fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status {
        StatusCode::BAD_GATEWAY => "BadGateway",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
        _ => "InternalServerError",
    };
    error_response(status, kind, "Simulated server error", None, None)
}

pub(super) fn sim_error_response(e: &SimError) -> Response {
    let (status, kind) = match e {
        SimError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
        SimError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        SimError::Invalid(_) | SimError::FaultSpec { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "ValidationFailure")
        }
    };
    error_response(status, kind, &e.to_string(), None, None)
}

/// `{"data": {key: value, "pagination": …}}`, serialised straight from borrowed items.
pub(super) fn data_body<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    pagination: Option<&PageOut>,
) -> Vec<u8> {
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

pub(super) fn ok(body: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, SEGMENT_JSON)], body).into_response()
}
