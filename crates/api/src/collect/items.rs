//! Listed items into resources: what reading one kind gave ([`KindRead`]), identity and name by
//! kind, redaction, quarantine of items that cannot be identified, and repeated ids.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{CollectError, Result};
use segwatch_core::model::{QUARANTINE_KEPT_PER_LISTING, Quarantined, Resource, ResourceKind};
use segwatch_core::redact::SecretPolicy;

/// What reading one kind gave.
#[derive(Debug, Default)]
pub(super) struct KindRead {
    pub(super) resources: Vec<Resource>,
    pub(super) quarantine: Vec<Quarantined>,
    /// Items that could not be read: `quarantine` keeps the first
    /// [`QUARANTINE_KEPT_PER_LISTING`] of them.
    pub(super) unreadable: usize,
    /// Items listed, quarantined ones included.
    pub(super) listed: usize,
    /// Set when the kind's endpoint refused (403/404): the kind is unavailable.
    pub(super) refused: Option<(u16, String)>,
    /// Why the listing disagreed with itself (twice, once `list` is done): incomplete.
    pub(super) inconsistent: Option<String>,
}

impl KindRead {
    pub(super) fn refused(status: u16, reason: String) -> Self {
        KindRead {
            refused: Some((status, reason)),
            ..KindRead::default()
        }
    }
}

impl KindRead {
    /// Converts the next listed item, quarantining it when it cannot be identified.
    pub(super) fn convert(
        &mut self,
        kind: ResourceKind,
        path: &str,
        item: Value,
        policy: &SecretPolicy,
    ) {
        let index = self.listed;
        self.listed += 1;
        if let Some(reason) = unusable(kind, &item) {
            self.quarantine(kind, path, index, reason, item, policy);
            return;
        }
        self.push(kind, path, index, item, policy);
    }

    pub(super) fn quarantine(
        &mut self,
        kind: ResourceKind,
        path: &str,
        index: usize,
        reason: String,
        mut item: Value,
        policy: &SecretPolicy,
    ) {
        self.unreadable += 1;
        if self.quarantine.len() < QUARANTINE_KEPT_PER_LISTING {
            policy.redact(kind, &mut item);
            self.quarantine
                .push(Quarantined::new(kind, path, index, reason, &item));
        }
    }

    /// Keeps one copy of each id; returns the first id listed twice, if any.
    pub(super) fn dedupe(&mut self, kind: ResourceKind) -> Option<String> {
        let (kept, repeated) = dedupe(kind, std::mem::take(&mut self.resources));
        self.resources = kept;
        repeated
    }
}

/// Why a listed item cannot become a resource, checked before any sub-request is made for it.
pub(super) fn unusable(kind: ResourceKind, item: &Value) -> Option<String> {
    let fields: &[&str] = match kind {
        ResourceKind::Invite => {
            return (!matches!(item, Value::String(s) if !s.is_empty())).then(|| {
                format!(
                    "an invite is an email string, got {}",
                    crate::segment::kind_of(item)
                )
            });
        }
        ResourceKind::Label => &["key", "value"],
        ResourceKind::SourceSchemaSettings => &["sourceId"],
        _ => &["id"],
    };
    if !item.is_object() {
        return Some(format!(
            "expected an object, got {}",
            crate::segment::kind_of(item)
        ));
    }
    fields.iter().find_map(|field| match item.get(field) {
        Some(Value::String(s)) if !s.is_empty() || *field == "value" => None,
        Some(Value::String(_)) => Some(format!("`{field}` is empty")),
        Some(other) => Some(format!(
            "`{field}` is {}, expected a string",
            crate::segment::kind_of(other)
        )),
        None => Some(format!("has no `{field}`")),
    })
}

impl KindRead {
    /// Converts an item already checked by [`unusable`] (so `to_resource` finds what it
    /// needs; the item is not cloned for the unlikely error, which is quarantined without it).
    pub(super) fn push(
        &mut self,
        kind: ResourceKind,
        path: &str,
        index: usize,
        item: Value,
        policy: &SecretPolicy,
    ) {
        match to_resource(kind, path, index, item, policy) {
            Ok(r) => self.resources.push(r),
            Err(e) => self.quarantine(kind, path, index, e.to_string(), Value::Null, policy),
        }
    }
}

/// Turns one API item into a resource: identity and display name by kind, then redaction.
pub(super) fn to_resource(
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
        // Identified by its source.
        ResourceKind::SourceSchemaSettings => {
            let id = string_field(&item, "sourceId")
                .ok_or_else(|| missing("sourceId", &item))?
                .to_string();
            (id.clone(), id, item)
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
                // `DestinationFilterV1` has a `title`, no `name`.
                ResourceKind::DestinationFilter => {
                    string_field(&item, "title").filter(|n| !n.is_empty())
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

/// Keeps the last of any repeated id, and returns the first id listed twice, if any. Offset
/// pagination over a list that changes mid-read can repeat an item; storing both would break
/// the one-version-per-resource invariant.
pub(super) fn dedupe(
    kind: ResourceKind,
    mut items: Vec<Resource>,
) -> (Vec<Resource>, Option<String>) {
    let keep: Vec<bool> = {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, r) in items.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        if last.len() == items.len() {
            return (items, None);
        }
        items
            .iter()
            .enumerate()
            .map(|(i, r)| last[r.id.as_str()] == i)
            .collect()
    };
    let repeated = items
        .iter()
        .zip(&keep)
        .find(|(_, kept)| !**kept)
        .map(|(r, _)| r.id.clone());
    tracing::warn!(%kind, repeated = keep.iter().filter(|k| !**k).count(),
        "the API listed some resources twice; keeping the last copy");
    let mut keep = keep.into_iter();
    items.retain(|_| keep.next().unwrap_or(true));
    (items, repeated)
}

pub(super) fn string_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

pub(super) fn shorten(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
