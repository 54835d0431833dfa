//! The Public API route handlers and the views they serialise.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use serde::Serialize;

use crate::audit;
use crate::regulations::Regulations;
use crate::state::{Function, Group, Permission, TrackingPlan, User, Warehouse, WorkspaceState};

use super::gate::Endless;
use super::pagination::{QueryPairs, list_page};
use super::responses::{data_body, not_found_response, ok, validation};
use super::{Shared, lock};

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

pub(super) type Shr = State<Arc<Shared>>;
pub(super) type Endlessness = Option<Extension<Endless>>;
pub(super) type IdPath = Result<Path<String>, PathRejection>;

pub(super) async fn get_workspace(State(sh): Shr) -> Response {
    ok(data_body("workspace", &sh.read().state.workspace, None))
}

pub(super) async fn list_roles(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let roles = &sim.state.roles;
    list_page("roles", roles.len(), q, e, |r| roles[r].iter().collect())
}

pub(super) async fn list_users(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let users = &sim.state.users;
    list_page("users", users.len(), q, e, |r| users[r].iter().collect())
}

pub(super) async fn get_user(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("user", sim.state.user(&id))
}

pub(super) async fn list_invites(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let invites = &sim.state.invites;
    list_page("invites", invites.len(), q, e, |r| {
        invites[r].iter().collect()
    })
}

pub(super) async fn list_groups(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let groups = &sim.state.groups;
    list_page("userGroups", groups.len(), q, e, |r| {
        groups[r].iter().map(GroupView::from).collect()
    })
}

pub(super) async fn get_group(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("userGroup", sim.state.group(&id).map(GroupView::from))
}

pub(super) async fn list_group_users(
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

pub(super) async fn list_group_invites(
    State(sh): Shr,
    id: IdPath,
    q: QueryPairs,
    e: Endlessness,
) -> Response {
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

pub(super) async fn list_sources(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let sources = &sim.state.sources;
    list_page("sources", sources.len(), q, e, |r| {
        sources[r].iter().collect()
    })
}

pub(super) async fn get_source(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let sim = sh.read();
    one("source", sim.state.source(&id))
}

pub(super) async fn list_labels(State(sh): Shr) -> Response {
    ok(data_body("labels", &sh.read().state.labels, None))
}

/// `GET /audit-events`: newest first, filtered by `startTime` (inclusive), `endTime`
/// (inclusive, default now), `resourceId` and `resourceType`, paginated like every list.
pub(super) async fn list_audit_events(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
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

pub(super) async fn list_destinations(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.destinations;
    list_page("destinations", items.len(), q, e, |r| {
        items[r].iter().collect()
    })
}

/// `{"data": {key: item}}` for a found item, else Segment's 404.
/// `POST /regulations`: validated like Segment's (`regulationType` from the enum, `subjectType`
/// `USER_ID` or `OBJECT_ID`, non-empty `subjectIds`), else 422.
pub(super) async fn post_regulation(State(sh): Shr, body: Bytes) -> Response {
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

pub(super) async fn get_regulation(State(sh): Shr, id: IdPath) -> Response {
    let Ok(Path(id)) = id else {
        return not_found_response();
    };
    let workspace_id = sh.read().state.workspace.id.clone();
    one("regulation", lock(&sh.regulations).get(&id, &workspace_id))
}

/// `GET /regulations`, filtered by `status` and `regulationTypes` (repeated, comma-separated
/// or `regulationTypes[i]`), paginated.
pub(super) async fn list_regulations(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
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

pub(super) async fn get_destination(State(sh): Shr, id: IdPath) -> Response {
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

pub(super) async fn list_warehouses(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.warehouses;
    list_page("warehouses", items.len(), q, e, |r| {
        items[r].iter().map(WarehouseView::from).collect()
    })
}

pub(super) async fn get_warehouse(State(sh): Shr, id: IdPath) -> Response {
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

pub(super) async fn list_warehouse_sources(
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

pub(super) async fn list_functions(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
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
    if !crate::generate::FUNCTION_TYPES.contains(&resource_type.as_str()) {
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

pub(super) async fn get_function(State(sh): Shr, id: IdPath) -> Response {
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

pub(super) async fn list_tracking_plans(State(sh): Shr, q: QueryPairs, e: Endlessness) -> Response {
    let sim = sh.read();
    let items = &sim.state.tracking_plans;
    list_page("trackingPlans", items.len(), q, e, |r| {
        items[r].iter().map(TrackingPlanView::from).collect()
    })
}

pub(super) async fn get_tracking_plan(State(sh): Shr, id: IdPath) -> Response {
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

pub(super) async fn list_tracking_plan_sources(
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
