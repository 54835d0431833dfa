//! Collect: read every resource kind of one workspace through the [`SegmentClient`], redact
//! secrets and produce canonical [`Resource`]s.
//!
//! A collection is all or nothing: the first error of any kind fails the whole collection
//! (the other requests are dropped), because a partial view would later read as "removed".
//! Lists are converted page by page so 100,000 users never sit in memory as JSON trees.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::model::{Resource, ResourceKind};
use crate::redact::SecretPolicy;
use crate::segment::{SegmentClient, SegmentError};

/// Every resource of one workspace at one moment.
#[derive(Debug)]
pub struct Collection {
    /// Segment's id of the workspace the token belongs to.
    pub workspace_id: String,
    /// All resources, sorted by kind then id.
    pub resources: Vec<Resource>,
}

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The API could not be read.
    #[error("cannot collect {kind} resources: {cause}")]
    Api {
        /// The kind being collected.
        kind: ResourceKind,
        /// The client's error (part of the message, so not chained again).
        cause: SegmentError,
    },
    /// The API answered with an item segwatch cannot identify.
    #[error(
        "cannot collect {kind} resources: item {index} from GET {path} has no string field `{field}`: {item}"
    )]
    MissingField {
        /// The kind being collected.
        kind: ResourceKind,
        /// The request path.
        path: String,
        /// The missing field.
        field: &'static str,
        /// Position in the list.
        index: usize,
        /// The item, shortened.
        item: String,
    },
}

type Result<T> = std::result::Result<T, CollectError>;

/// The function types listed, one `GET /functions?resourceType=…` listing each. API versions
/// before the insert functions answer 400 or 422 for the last three; those are skipped.
pub const FUNCTION_TYPES: [&str; 5] = [
    "DESTINATION",
    "SOURCE",
    "INSERT_DESTINATION",
    "INSERT_SOURCE",
    "INSERT_TRANSFORMATION",
];

/// Which optional kinds a collection reads (`[collect]` in the configuration). The workspace,
/// roles, users, groups, invites, sources and labels are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectOptions {
    /// Destinations.
    pub destinations: bool,
    /// Warehouses, with their connected sources.
    pub warehouses: bool,
    /// Functions of every type.
    pub functions: bool,
    /// Tracking plans, with their connected sources.
    pub tracking_plans: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            destinations: true,
            warehouses: true,
            functions: true,
            tracking_plans: true,
        }
    }
}

impl CollectOptions {
    /// Whether a collection with these options reads `kind`.
    pub fn collects(&self, kind: ResourceKind) -> bool {
        match kind {
            ResourceKind::Destination => self.destinations,
            ResourceKind::Warehouse => self.warehouses,
            ResourceKind::Function => self.functions,
            ResourceKind::TrackingPlan => self.tracking_plans,
            ResourceKind::Workspace
            | ResourceKind::Role
            | ResourceKind::User
            | ResourceKind::Group
            | ResourceKind::Invite
            | ResourceKind::Source
            | ResourceKind::Label => true,
            // Read by the audit-trail stage, never collected as a resource.
            ResourceKind::AuditEvent => false,
        }
    }
}

/// Runs `read` only when `enabled`; a kind turned off is not requested at all.
async fn optional<F>(enabled: bool, read: F) -> Result<Vec<Resource>>
where
    F: std::future::Future<Output = Result<Vec<Resource>>>,
{
    if enabled { read.await } else { Ok(Vec::new()) }
}

/// Reads the whole workspace. Kinds are fetched concurrently; the client bounds the number of
/// requests in flight.
pub async fn collect(
    client: &SegmentClient,
    policy: &SecretPolicy,
    options: &CollectOptions,
) -> Result<Collection> {
    let (workspace, roles, users, groups, invites, sources, labels) = tokio::try_join!(
        workspace(client, policy),
        list(client, policy, ResourceKind::Role, "/roles", "roles"),
        list(client, policy, ResourceKind::User, "/users", "users"),
        groups(client, policy),
        list(client, policy, ResourceKind::Invite, "/invites", "invites"),
        list(client, policy, ResourceKind::Source, "/sources", "sources"),
        labels(client, policy),
    )?;
    let (destinations, warehouses, functions, tracking_plans) = tokio::try_join!(
        optional(
            options.destinations,
            list(
                client,
                policy,
                ResourceKind::Destination,
                "/destinations",
                "destinations"
            )
        ),
        optional(
            options.warehouses,
            with_connected_sources(
                client,
                policy,
                ResourceKind::Warehouse,
                ("/warehouses", "warehouses"),
                ("connected-sources", "connectedSourceIds"),
            )
        ),
        optional(options.functions, functions(client, policy)),
        optional(
            options.tracking_plans,
            with_connected_sources(
                client,
                policy,
                ResourceKind::TrackingPlan,
                ("/tracking-plans", "trackingPlans"),
                ("sources", "sourceIds"),
            )
        ),
    )?;
    let workspace_id = workspace.id.clone();
    let mut resources = vec![workspace];
    for mut part in [
        roles,
        users,
        groups,
        invites,
        sources,
        labels,
        destinations,
        warehouses,
        functions,
        tracking_plans,
    ] {
        resources.append(&mut part);
    }
    resources.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Ok(Collection {
        workspace_id,
        resources,
    })
}

async fn workspace(client: &SegmentClient, policy: &SecretPolicy) -> Result<Resource> {
    let kind = ResourceKind::Workspace;
    let value = client
        .get_object("/", "workspace")
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?;
    to_resource(kind, "/", 0, value, policy)
}

async fn labels(client: &SegmentClient, policy: &SecretPolicy) -> Result<Vec<Resource>> {
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
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        out.push(to_resource(kind, "/labels", index, item, policy)?);
    }
    Ok(dedupe(kind, out))
}

async fn list(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    path: &str,
    key: &str,
) -> Result<Vec<Resource>> {
    let mut pages = client.pages(path, key);
    let mut out = Vec::new();
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?
    {
        for item in page {
            let index = out.len();
            out.push(to_resource(kind, path, index, item, policy)?);
        }
    }
    Ok(dedupe(kind, out))
}

/// Groups with their members (`/groups/{id}/users`) and pending invites (`/groups/{id}/invites`)
/// folded into the group's body as `members` and `invites`, so a membership change is a change
/// of the group.
async fn groups(client: &SegmentClient, policy: &SecretPolicy) -> Result<Vec<Resource>> {
    let kind = ResourceKind::Group;
    let mut pages = client.pages("/groups", "userGroups");
    let mut raw = Vec::new();
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?
    {
        raw.extend(page);
    }
    let mut tasks = JoinSet::new();
    for (index, group) in raw.iter().enumerate() {
        let id = string_field(group, "id").ok_or_else(|| CollectError::MissingField {
            kind,
            path: "/groups".into(),
            field: "id",
            index,
            item: shorten(group),
        })?;
        let client = client.clone();
        let id = id.to_string();
        tasks.spawn(async move {
            let segment = encode_segment(&id);
            let members = client
                .list_all(&format!("/groups/{segment}/users"), "users")
                .await?;
            let mut invites = client
                .list_all(&format!("/groups/{segment}/invites"), "emails")
                .await?;
            // Pending invites are a set; their order is not data.
            invites.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            Ok::<_, SegmentError>((index, members, invites))
        });
    }
    let mut extras = HashMap::with_capacity(raw.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, members, invites) = joined
            .expect("group collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        extras.insert(index, (members, invites));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (index, mut group) in raw.into_iter().enumerate() {
        let (members, invites) = extras.remove(&index).unwrap_or_default();
        if let Value::Object(map) = &mut group {
            map.insert("members".into(), Value::Array(members));
            map.insert("invites".into(), Value::Array(invites));
        }
        out.push(to_resource(kind, "/groups", index, group, policy)?);
    }
    Ok(dedupe(kind, out))
}

/// Every item of a paginated listing, as the API sent it.
async fn raw_list(
    client: &SegmentClient,
    kind: ResourceKind,
    path: &str,
    key: &str,
) -> Result<Vec<Value>> {
    client
        .list_all(path, key)
        .await
        .map_err(|cause| CollectError::Api { kind, cause })
}

/// Items of `list` (path, items key) with the ids of the sources connected to each, read from
/// `{list path}/{id}/{sub path}` and stored sorted in the item's body under `field`: a warehouse's
/// `connectedSourceIds`, a tracking plan's `sourceIds`. One request per item, not per source.
/// An item deleted between the two reads (404) is left out, as the next poll would find.
async fn with_connected_sources(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    (path, key): (&str, &str),
    (sub_path, field): (&'static str, &'static str),
) -> Result<Vec<Resource>> {
    let raw = raw_list(client, kind, path, key).await?;
    let mut tasks = JoinSet::new();
    for (index, item) in raw.iter().enumerate() {
        let id = required_id(kind, path, index, item)?;
        let client = client.clone();
        let sub = format!("{path}/{}/{sub_path}", encode_segment(id));
        tasks.spawn(async move {
            match client.list_all(&sub, "sources").await {
                Ok(sources) => Ok((index, Some(sources))),
                Err(e) if e.status() == Some(404) => {
                    tracing::debug!(%kind, path = %sub, "gone since it was listed; left out");
                    Ok((index, None))
                }
                Err(e) => Err(e),
            }
        });
    }
    let mut connected = HashMap::with_capacity(raw.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, sources) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        connected.insert(index, sources);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (index, mut item) in raw.into_iter().enumerate() {
        let Some(sources) = connected.remove(&index).flatten() else {
            continue;
        };
        // Connections are a set: sorted ids, so the API's order is not a change.
        let mut ids: Vec<String> = sources
            .iter()
            .filter_map(|s| string_field(s, "id"))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        if let Value::Object(map) = &mut item {
            map.insert(
                field.into(),
                Value::Array(ids.into_iter().map(Value::String).collect()),
            );
        }
        out.push(to_resource(kind, path, index, item, policy)?);
    }
    Ok(dedupe(kind, out))
}

/// Functions of every type in [`FUNCTION_TYPES`]. List items lack the code and settings, so each
/// function is read again with `GET /functions/{id}`; the full object's fields win over the
/// list item's, and fields only the list item has are kept. A type the API rejects (400 or 422,
/// as versions before insert functions do) is skipped; a function deleted between the two
/// reads (404) is left out.
async fn functions(client: &SegmentClient, policy: &SecretPolicy) -> Result<Vec<Resource>> {
    let kind = ResourceKind::Function;
    let path = "/functions";
    let mut listed = Vec::new();
    for resource_type in FUNCTION_TYPES {
        let query = vec![("resourceType".to_string(), resource_type.to_string())];
        let mut pages = client.pages_with_query(path, query, "functions");
        let mut first = true;
        loop {
            match pages.next_page().await {
                Ok(Some(page)) => listed.extend(page),
                Ok(None) => break,
                Err(e) if first && matches!(e.status(), Some(400 | 422)) => {
                    tracing::debug!(
                        resource_type,
                        error = %e,
                        "the API does not list this function type; skipped"
                    );
                    break;
                }
                Err(cause) => return Err(CollectError::Api { kind, cause }),
            }
            first = false;
        }
    }
    let mut tasks = JoinSet::new();
    for (index, item) in listed.iter().enumerate() {
        let id = required_id(kind, path, index, item)?;
        let client = client.clone();
        let one = format!("{path}/{}", encode_segment(id));
        tasks.spawn(async move {
            match client.get_object(&one, "function").await {
                Ok(full) => Ok((index, Some(full))),
                Err(e) if e.status() == Some(404) => {
                    tracing::debug!(path = %one, "function gone since it was listed; left out");
                    Ok((index, None))
                }
                Err(e) => Err(e),
            }
        });
    }
    let mut full = HashMap::with_capacity(listed.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, value) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        full.insert(index, value);
    }
    let mut out = Vec::with_capacity(listed.len());
    for (index, mut item) in listed.into_iter().enumerate() {
        let Some(detail) = full.remove(&index).flatten() else {
            continue;
        };
        match (&mut item, detail) {
            (Value::Object(map), Value::Object(detail)) => map.extend(detail),
            (_, detail) => item = detail,
        }
        out.push(to_resource(kind, path, index, item, policy)?);
    }
    Ok(dedupe(kind, out))
}

fn required_id<'v>(
    kind: ResourceKind,
    path: &str,
    index: usize,
    item: &'v Value,
) -> Result<&'v str> {
    string_field(item, "id").ok_or_else(|| CollectError::MissingField {
        kind,
        path: path.into(),
        field: "id",
        index,
        item: shorten(item),
    })
}

/// Turns one API item into a resource: identity and display name by kind, then redaction.
fn to_resource(
    kind: ResourceKind,
    path: &str,
    index: usize,
    item: Value,
    policy: &SecretPolicy,
) -> Result<Resource> {
    let missing = |field: &'static str, item: &Value| CollectError::MissingField {
        kind,
        path: path.to_string(),
        field,
        index,
        item: shorten(item),
    };
    let (id, name, mut value) = match kind {
        // Invites are bare email strings in the API.
        ResourceKind::Invite => {
            let email = item
                .as_str()
                .ok_or_else(|| missing("email", &item))?
                .to_string();
            let mut map = Map::new();
            map.insert("email".into(), Value::String(email.clone()));
            (email.clone(), email, Value::Object(map))
        }
        ResourceKind::Label => {
            let key = string_field(&item, "key").ok_or_else(|| missing("key", &item))?;
            let value = string_field(&item, "value").ok_or_else(|| missing("value", &item))?;
            let id = format!("{key}:{value}");
            (id.clone(), id, item)
        }
        _ => {
            let id = string_field(&item, "id")
                .ok_or_else(|| missing("id", &item))?
                .to_string();
            let nested = |outer: &str, field: &str| {
                item.get(outer)
                    .and_then(|o| string_field(o, field))
                    .filter(|n| !n.is_empty())
            };
            let name = match kind {
                ResourceKind::User => string_field(&item, "email"),
                ResourceKind::Function => {
                    string_field(&item, "displayName").filter(|n| !n.is_empty())
                }
                // Warehouses have no name of their own; the settings usually carry one.
                ResourceKind::Warehouse => {
                    nested("settings", "name").or_else(|| nested("metadata", "name"))
                }
                _ => string_field(&item, "name")
                    .filter(|n| !n.is_empty())
                    .or_else(|| string_field(&item, "slug"))
                    .or_else(|| nested("metadata", "name")),
            }
            .unwrap_or(&id)
            .to_string();
            (id, name, item)
        }
    };
    policy.redact(kind, &mut value);
    Ok(Resource::new(kind, id, name, value))
}

/// Keeps the last of any repeated id. Offset pagination over a list that changes mid-read can
/// repeat an item; storing both would break the one-version-per-resource invariant.
fn dedupe(kind: ResourceKind, mut items: Vec<Resource>) -> Vec<Resource> {
    let before = items.len();
    let mut seen = HashMap::with_capacity(items.len());
    for (i, r) in items.iter().enumerate() {
        seen.insert(r.id.clone(), i);
    }
    if seen.len() != before {
        tracing::warn!(%kind, repeated = before - seen.len(), "the API listed some resources twice; keeping the last copy");
        let mut i = 0;
        items.retain(|r| {
            let keep = seen.get(&r.id) == Some(&i);
            i += 1;
            keep
        });
    }
    items
}

fn string_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn shorten(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Percent-encodes an id for use as one path segment (Segment ids are alphanumeric, but an id is
/// data from the network and must not be able to change the path).
fn encode_segment(id: &str) -> String {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identities_and_names_by_kind() {
        let p = SecretPolicy::default();
        let user = to_resource(
            ResourceKind::User,
            "/users",
            0,
            json!({"id": "u1", "email": "a@x.io", "name": ""}),
            &p,
        )
        .unwrap();
        assert_eq!((user.id.as_str(), user.name.as_str()), ("u1", "a@x.io"));
        let invite = to_resource(ResourceKind::Invite, "/invites", 0, json!("b@x.io"), &p).unwrap();
        assert_eq!(
            (invite.id.as_str(), invite.body.as_str()),
            ("b@x.io", r#"{"email":"b@x.io"}"#)
        );
        let label = to_resource(
            ResourceKind::Label,
            "/labels",
            0,
            json!({"key": "environment", "value": "prod"}),
            &p,
        )
        .unwrap();
        assert_eq!(label.id, "environment:prod");
        let source = to_resource(
            ResourceKind::Source,
            "/sources",
            0,
            json!({"id": "s1", "slug": "web", "name": null, "writeKeys": ["clear"]}),
            &p,
        )
        .unwrap();
        assert_eq!(source.name, "web");
        assert!(!source.body.contains("clear"));
    }

    #[test]
    fn items_without_identity_are_reported_with_their_position() {
        let err = to_resource(
            ResourceKind::User,
            "/users",
            7,
            json!({"email": "a@x.io"}),
            &SecretPolicy::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("item 7") && err.contains("/users") && err.contains("`id`"),
            "{err}"
        );
    }

    #[test]
    fn repeated_ids_keep_the_last_copy() {
        let p = SecretPolicy::default();
        let r = |id: &str, n: i64| {
            to_resource(
                ResourceKind::Role,
                "/roles",
                0,
                json!({"id": id, "name": "r", "n": n}),
                &p,
            )
            .unwrap()
        };
        let kept = dedupe(ResourceKind::Role, vec![r("a", 1), r("b", 1), r("a", 2)]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].id, "a");
        assert!(kept[1].body.contains("\"n\":2"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("abc_09-Z"), "abc_09-Z");
        // Dots too: `..` as a segment would be normalised away by URL parsing.
        assert_eq!(encode_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
