//! Routes of the data controls: a destination's filters (`GET /destination/{id}/filters`,
//! singular `destination`, as `api/api_destination_filters.go` of Segment's Go SDK has it) and
//! its Actions subscriptions (`GET /destinations/{id}/subscriptions`, `api/api_destinations.go`),
//! both paginated with `data.filters` / `data.subscriptions` and `data.pagination`.

use axum::extract::{Path, State};
use axum::response::Response;

use super::pagination::{QueryPairs, list_page};
use super::responses::{data_body, not_found_response, ok};
use super::routes::{Endlessness, IdPath, Shr};

pub(super) async fn list_destination_filters(
    State(sh): Shr,
    id: IdPath,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let Some(i) = sim.state.destination_position(&id) else {
        return not_found_response();
    };
    let filters = &sim.state.destinations[i].filters;
    list_page("filters", filters.len(), q, e, |r| {
        filters[r].iter().collect()
    })
}

/// `GET /sources/{id}/settings`: `{"data": {"sourceId", "settings"}}`, no pagination
/// (`listSchemaSettingsInSource`).
pub(super) async fn get_source_settings(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let Some(source) = sim.state.source(&id) else {
        return not_found_response();
    };
    let body = serde_json::json!({"data": {
        "sourceId": source.id,
        "settings": source.schema_settings,
    }});
    ok(serde_json::to_vec(&body).expect("settings serialise"))
}

/// `GET /transformations`: paginated, `data.transformations` (`listTransformations`).
pub(super) async fn list_transformations(
    State(sh): Shr,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let sim = sh.read();
    let items = &sim.state.transformations;
    list_page("transformations", items.len(), q, e, |r| {
        items[r].iter().collect()
    })
}

/// `GET /transformations/{id}`: `data.transformation` (`getTransformation`).
pub(super) async fn get_transformation(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    match sim.state.transformations.iter().find(|t| t.id == id) {
        Some(t) => ok(data_body("transformation", t, None)),
        None => not_found_response(),
    }
}

/// `GET /reverse-etl-models`: paginated, `data.models` (`listReverseEtlModels`).
pub(super) async fn list_reverse_etl_models(
    State(sh): Shr,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let sim = sh.read();
    let items = &sim.state.reverse_etl_models;
    list_page("models", items.len(), q, e, |r| items[r].iter().collect())
}

pub(super) async fn list_destination_subscriptions(
    State(sh): Shr,
    id: IdPath,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    let Some(i) = sim.state.destination_position(&id) else {
        return not_found_response();
    };
    let subscriptions = &sim.state.destinations[i].subscriptions;
    list_page("subscriptions", subscriptions.len(), q, e, |r| {
        subscriptions[r].iter().collect()
    })
}
