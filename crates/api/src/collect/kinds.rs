//! How each kind is read: plain listings, and the kinds that need more requests per item
//! (group members and invites, connected sources, function code).

use serde_json::Value;
use tokio::task::JoinSet;

use super::items::{KindRead, shorten, string_field, to_resource};
use super::listing::{list, raw_list};
use super::{CollectError, FUNCTION_TYPES, Result};
use crate::segment::{SegmentClient, SegmentError};
use segwatch_core::model::{Resource, ResourceKind};
use segwatch_core::redact::SecretPolicy;

pub(super) async fn workspace(client: &SegmentClient, policy: &SecretPolicy) -> Result<Resource> {
    let kind = ResourceKind::Workspace;
    let value = client
        .get_object("/", "workspace")
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?;
    to_resource(kind, "/", 0, value, policy)
}

async fn labels(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
    let kind = ResourceKind::Label;
    // `/labels` is the one list Segment does not paginate.
    let value = client
        .get_object("/labels", "labels")
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?;
    let items = match value {
        Value::Array(items) => items,
        other => {
            return Err(CollectError::MissingField {
                kind,
                path: "/labels".into(),
                field: "labels",
                index: 0,
                item: shorten(&other),
            });
        }
    };
    let mut read = KindRead::default();
    for item in items {
        read.convert(kind, "/labels", item, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

/// Members (`/groups/{id}/users`) and pending invites (`/groups/{id}/invites`) of one group,
/// folded into its body as `members` and `invites`, so a membership change is a change of the
/// group. `false` when the group was deleted since it was listed (404): it is left out, and a
/// group segwatch holds is then confirmed gone or found by
/// [`confirm_missing`](super::confirm_missing).
pub(super) async fn group_extras(
    client: &SegmentClient,
    id: &str,
    group: &mut Value,
) -> std::result::Result<bool, SegmentError> {
    let segment = encode_segment(id);
    let members = match client
        .list_all(&format!("/groups/{segment}/users"), "users")
        .await
    {
        Err(e) if e.is_not_found() => return Ok(false),
        other => other?,
    };
    let mut invites = match client
        .list_all(&format!("/groups/{segment}/invites"), "emails")
        .await
    {
        Err(e) if e.is_not_found() => return Ok(false),
        other => other?,
    };
    // Pending invites are a set; their order is not data.
    invites.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    if let Value::Object(map) = group {
        map.insert("members".into(), Value::Array(members));
        map.insert("invites".into(), Value::Array(invites));
    }
    Ok(true)
}

/// Groups with their members and pending invites ([`group_extras`]).
async fn groups(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
    let kind = ResourceKind::Group;
    let path = "/groups";
    let mut read = KindRead::default();
    let raw = raw_list(
        client,
        policy,
        kind,
        path,
        "userGroups",
        Vec::new(),
        &mut read,
    )
    .await?;
    complete_each(raw, kind, path, policy, read, |mut group| {
        let client = client.clone();
        async move {
            let id = string_field(&group, "id").unwrap_or_default().to_owned();
            let present = group_extras(&client, &id, &mut group).await?;
            Ok(present.then_some(group))
        }
    })
    .await
}

/// Where a kind with connected sources lives: (list path, items key, get-by-id key), (sub
/// path, body field).
fn connected(
    kind: ResourceKind,
) -> (
    (&'static str, &'static str, &'static str),
    (&'static str, &'static str),
) {
    match kind {
        ResourceKind::Warehouse => (
            ("/warehouses", "warehouses", "warehouse"),
            ("connected-sources", "connectedSourceIds"),
        ),
        _ => (
            ("/tracking-plans", "trackingPlans", "trackingPlan"),
            ("sources", "sourceIds"),
        ),
    }
}

/// The ids of the sources connected to one warehouse or tracking plan, stored sorted in its
/// body; `false` when the item was deleted since it was listed (404).
pub(super) async fn add_connected_sources(
    client: &SegmentClient,
    kind: ResourceKind,
    id: &str,
    item: &mut Value,
) -> std::result::Result<bool, SegmentError> {
    let ((path, _, _), (sub_path, field)) = connected(kind);
    let sub = format!("{path}/{}/{sub_path}", encode_segment(id));
    let sources = match client.list_all(&sub, "sources").await {
        Ok(sources) => sources,
        Err(e) if e.status() == Some(404) => {
            tracing::debug!(%kind, path = %sub, "gone since it was listed; left out");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    // Connections are a set: sorted ids, so the API's order is not a change.
    let mut ids: Vec<String> = sources
        .iter()
        .filter_map(|s| string_field(s, "id"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    if let Value::Object(map) = item {
        map.insert(
            field.into(),
            Value::Array(ids.into_iter().map(Value::String).collect()),
        );
    }
    Ok(true)
}

/// Warehouses or tracking plans with the ids of the sources connected to each: a warehouse's
/// `connectedSourceIds`, a tracking plan's `sourceIds`. One request per item, not per source.
/// An item deleted between the two reads (404) is left out, as the next poll would find.
async fn with_connected_sources(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
) -> Result<KindRead> {
    let ((path, key, _), _) = connected(kind);
    let mut read = KindRead::default();
    let raw = raw_list(client, policy, kind, path, key, Vec::new(), &mut read).await?;
    complete_each(raw, kind, path, policy, read, |mut item| {
        let client = client.clone();
        async move {
            let id = string_field(&item, "id").unwrap_or_default().to_owned();
            let present = add_connected_sources(&client, kind, &id, &mut item).await?;
            Ok(present.then_some(item))
        }
    })
    .await
}

/// Completes each listed item with its sub-resources, concurrently (`complete` answers `None`
/// for an item deleted between the list and its sub-requests, which is left out), then adds
/// them to `read` in list order. The first API error fails the kind.
pub(super) async fn complete_each<F, Fut>(
    raw: Vec<(usize, Value)>,
    kind: ResourceKind,
    path: &str,
    policy: &SecretPolicy,
    mut read: KindRead,
    complete: F,
) -> Result<KindRead>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<Value>, SegmentError>>
        + Send
        + 'static,
{
    let mut tasks = JoinSet::new();
    for (index, item) in raw {
        let completed = complete(item);
        tasks.spawn(async move { completed.await.map(|item| (index, item)) });
    }
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, item) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        done.extend(item.map(|item| (index, item)));
    }
    done.sort_by_key(|(index, _)| *index);
    for (index, item) in done {
        read.push(kind, path, index, item, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

/// Merges `GET /functions/{id}` into a function's list item: the full object's fields win,
/// fields only the list item has are kept. `None` when it was deleted since it was listed.
async fn function_detail(
    client: &SegmentClient,
    id: &str,
    mut item: Value,
) -> std::result::Result<Option<Value>, SegmentError> {
    let one = format!("/functions/{}", encode_segment(id));
    let detail = match client.get_object(&one, "function").await {
        Ok(full) => full,
        Err(e) if e.status() == Some(404) => {
            tracing::debug!(path = %one, "function gone since it was listed; left out");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match (&mut item, detail) {
        (Value::Object(map), Value::Object(detail)) => map.extend(detail),
        (_, detail) => item = detail,
    }
    Ok(Some(item))
}

/// Functions of every type in [`FUNCTION_TYPES`]. List items lack the code and settings, so each
/// function is read again ([`function_detail`]). A type the API rejects (400 or 422, as
/// versions before insert functions do) is skipped.
async fn functions(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
    let kind = ResourceKind::Function;
    let path = "/functions";
    let mut read = KindRead::default();
    let mut listed = Vec::new();
    for resource_type in FUNCTION_TYPES {
        let query = vec![("resourceType".to_string(), resource_type.to_string())];
        match raw_list(client, policy, kind, path, "functions", query, &mut read).await {
            Ok(items) => listed.extend(items),
            Err(CollectError::Api { cause, .. }) if matches!(cause.status(), Some(400 | 422)) => {
                tracing::debug!(
                    resource_type,
                    error = %cause,
                    "the API does not list this function type; skipped"
                );
            }
            Err(e) => return Err(e),
        }
    }
    complete_each(listed, kind, path, policy, read, |item| {
        let client = client.clone();
        async move {
            let id = string_field(&item, "id").unwrap_or_default().to_owned();
            function_detail(&client, &id, item).await
        }
    })
    .await
}

/// Reads one kind in full (for [`collect`](super::collect), and again for
/// [`confirm_missing`](super::confirm_missing)).
pub(super) async fn read_kind(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
) -> Result<KindRead> {
    use ResourceKind as K;
    match kind {
        K::Role => list(client, policy, kind, "/roles", "roles").await,
        K::User => list(client, policy, kind, "/users", "users").await,
        K::Invite => list(client, policy, kind, "/invites", "invites").await,
        K::Source => list(client, policy, kind, "/sources", "sources").await,
        K::Destination => list(client, policy, kind, "/destinations", "destinations").await,
        K::Group => groups(client, policy).await,
        K::Warehouse | K::TrackingPlan => with_connected_sources(client, policy, kind).await,
        K::Function => functions(client, policy).await,
        K::Label => labels(client, policy).await,
        K::ReverseEtlModel => super::controls::reverse_etl_models(client, policy).await,
        // `api/api_transformations.go`: paginated, `data.transformations`.
        K::Transformation => {
            list(client, policy, kind, "/transformations", "transformations").await
        }
        K::DestinationFilter | K::DestinationSubscription | K::SourceSchemaSettings => {
            let layout = super::controls::per_parent(kind).expect("read per destination");
            super::controls::read_per_parent(client, policy, kind, layout).await
        }
        K::Workspace | K::AuditEvent | K::Access => Ok(KindRead::default()),
    }
}

/// Percent-encodes an id for use as one path segment (Segment ids are alphanumeric, but an id is
/// data from the network and must not be able to change the path).
pub(super) fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
