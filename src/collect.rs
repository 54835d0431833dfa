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

/// Reads the whole workspace. Kinds are fetched concurrently; the client bounds the number of
/// requests in flight.
pub async fn collect(client: &SegmentClient, policy: &SecretPolicy) -> Result<Collection> {
    let (workspace, roles, users, groups, invites, sources, labels) = tokio::try_join!(
        workspace(client, policy),
        list(client, policy, ResourceKind::Role, "/roles", "roles"),
        list(client, policy, ResourceKind::User, "/users", "users"),
        groups(client, policy),
        list(client, policy, ResourceKind::Invite, "/invites", "invites"),
        list(client, policy, ResourceKind::Source, "/sources", "sources"),
        labels(client, policy),
    )?;
    let workspace_id = workspace.id.clone();
    let mut resources = vec![workspace];
    for mut part in [roles, users, groups, invites, sources, labels] {
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
            let name = match kind {
                ResourceKind::User => string_field(&item, "email"),
                _ => string_field(&item, "name")
                    .filter(|n| !n.is_empty())
                    .or_else(|| string_field(&item, "slug")),
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
