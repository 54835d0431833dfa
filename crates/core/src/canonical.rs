//! Canonical form of a resource's JSON.
//!
//! Segment's API returns lists in no promised order: users, their permissions, the resources
//! inside a permission and labels can all come back reordered between two polls. segwatch hashes
//! and diffs resources, so such a reordering must not look like a change. [`canonicalize`]
//! therefore sorts every *identity-keyed* array by the identity of its elements (compared as
//! strings, byte-wise, so numeric ids sort as text); every other array keeps its order, because
//! there the order is data (write keys, categories). [`is_canonical`] tells, without copying,
//! whether a value is already canonical.
//!
//! Object keys need no work: `serde_json` is built without `preserve_order`, so a
//! [`Map`] is ordered by key and serialises its keys sorted.
//!
//! # Identity
//!
//! An object's identity ([`identity`]) is the first of these fields that holds a string or a
//! number: `id`, `roleId` (permissions), `key` (labels), `email` (members without ids).
//!
//! An array is identity-keyed ([`array_identities`]) when it is non-empty, every element is an
//! object with an identity, all elements take their identity from the same field, and no two
//! elements share an identity value. Anything else (a mixed array, duplicate identities, scalars)
//! keeps its order, and the diff compares it as a whole.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The fields that identify an object, in priority order.
pub const IDENTITY_FIELDS: [&str; 4] = ["id", "roleId", "key", "email"];

/// Returns the canonical form of `v`: every identity-keyed array, at any depth, sorted by the
/// identity values of its elements.
///
/// Canonicalisation is idempotent, and two values that differ only in the order of
/// identity-keyed arrays have byte-identical canonical serialisations.
pub fn canonicalize(mut v: Value) -> Value {
    canonicalize_in_place(&mut v);
    v
}

/// [`canonicalize`] without moving the value; nothing is reallocated except the sorted arrays.
pub fn canonicalize_in_place(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.iter_mut().for_each(canonicalize_in_place);
            sort_by_identity(items);
        }
        Value::Object(map) => map.values_mut().for_each(canonicalize_in_place),
        _ => {}
    }
}

/// Whether `v` is already in canonical form, i.e. `canonicalize(v.clone()) == *v`, checked
/// without copying: stored bodies are canonical, so callers can skip the copy.
pub fn is_canonical(v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            items.iter().all(is_canonical)
                && array_identities(items).is_none_or(|(_, ids)| ascending(&ids))
        }
        Value::Object(map) => map.values().all(is_canonical),
        _ => true,
    }
}

/// The identity of an object: the name of the identifying field and its value as a string.
///
/// The first of [`IDENTITY_FIELDS`] holding a string or a number wins; a field holding anything
/// else (null, a nested object) is skipped, as it cannot name the element. `None` when no field
/// qualifies.
pub fn identity(obj: &Map<String, Value>) -> Option<(&'static str, String)> {
    identity_ref(obj).map(|(field, id)| (field, id.into_owned()))
}

/// [`identity`], borrowing string identities: it runs for every element of every array.
fn identity_ref(obj: &Map<String, Value>) -> Option<(&'static str, Cow<'_, str>)> {
    IDENTITY_FIELDS
        .iter()
        .find_map(|&field| match obj.get(field)? {
            Value::String(s) => Some((field, Cow::Borrowed(s.as_str()))),
            Value::Number(n) => Some((field, Cow::Owned(n.to_string()))),
            _ => None,
        })
}

/// If `items` is identity-keyed, the shared identity field and each element's identity value,
/// in the order of `items`; otherwise `None` (also for an empty array, which has nothing to key).
///
/// This is the single definition of "identity-keyed" used by both canonicalisation and the diff,
/// so that "reordered" and "unchanged" always agree.
pub fn array_identities(items: &[Value]) -> Option<(&'static str, Vec<Cow<'_, str>>)> {
    let mut field = None;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let (f, id) = identity_ref(item.as_object()?)?;
        if *field.get_or_insert(f) != f {
            return None;
        }
        ids.push(id);
    }
    // Strictly ascending (the canonical order, so the usual case) implies unique.
    if !ascending(&ids) {
        let mut sorted: Vec<&str> = ids.iter().map(|id| id.as_ref()).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
    }
    Some((field?, ids))
}

/// Sorts an identity-keyed array by identity; leaves any other array as it is.
///
/// Identities within a keyed array are unique (duplicates make it unkeyed), so ordering by
/// identity alone is already total and no tie-break is needed.
fn sort_by_identity(items: &mut Vec<Value>) {
    let Some((_, ids)) = array_identities(items) else {
        return;
    };
    if ascending(&ids) {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| ids[a].cmp(&ids[b]));
    let mut taken: Vec<Option<Value>> = std::mem::take(items).into_iter().map(Some).collect();
    *items = order
        .into_iter()
        .map(|i| taken[i].take().expect("each index once"))
        .collect();
}

fn ascending(ids: &[Cow<'_, str>]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

/// A JSON type name for error messages (never the value itself, which may be sensitive).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon_str(v: Value) -> String {
        serde_json::to_string(&canonicalize(v)).unwrap()
    }

    #[test]
    fn identity_priority_and_types() {
        let id = |v: Value| identity(v.as_object().unwrap());
        assert_eq!(
            id(json!({"id": "u1", "email": "a@x"})),
            Some(("id", "u1".into()))
        );
        assert_eq!(id(json!({"id": 42})), Some(("id", "42".into())));
        assert_eq!(
            id(json!({"roleId": "r1", "key": "k"})),
            Some(("roleId", "r1".into()))
        );
        assert_eq!(
            id(json!({"key": "env", "value": "prod"})),
            Some(("key", "env".into()))
        );
        assert_eq!(
            id(json!({"email": "b@x.com", "name": "B"})),
            Some(("email", "b@x.com".into()))
        );
        // A null or structured `id` cannot name the element; the next field is used.
        assert_eq!(
            id(json!({"id": null, "key": "k"})),
            Some(("key", "k".into()))
        );
        assert_eq!(id(json!({"name": "x"})), None);
    }

    #[test]
    fn reordered_users_permissions_labels_are_identical() {
        let a = json!({
            "users": [
                {"id": "u2", "email": "b@x.com", "permissions": [
                    {"roleId": "r2", "roleName": "Read-only", "resources": [
                        {"id": "ws1", "type": "WORKSPACE"}
                    ]},
                    {"roleId": "r1", "roleName": "Source Admin", "resources": [
                        {"id": "s2", "type": "SOURCE"},
                        {"id": "s1", "type": "SOURCE", "labels": [
                            {"key": "team", "value": "a"}, {"key": "env", "value": "prod"}
                        ]}
                    ]}
                ]},
                {"id": "u1", "email": "a@x.com", "permissions": []}
            ]
        });
        let b = json!({
            "users": [
                {"id": "u1", "email": "a@x.com", "permissions": []},
                {"permissions": [
                    {"roleId": "r1", "roleName": "Source Admin", "resources": [
                        {"id": "s1", "type": "SOURCE", "labels": [
                            {"value": "prod", "key": "env"}, {"key": "team", "value": "a"}
                        ]},
                        {"id": "s2", "type": "SOURCE"}
                    ]},
                    {"roleId": "r2", "roleName": "Read-only", "resources": [
                        {"id": "ws1", "type": "WORKSPACE"}
                    ]}
                ], "email": "b@x.com", "id": "u2"}
            ]
        });
        assert_eq!(canon_str(a), canon_str(b));
    }

    #[test]
    fn object_keys_serialise_sorted() {
        // Guards the assumption that no crate enables serde_json's `preserve_order`.
        let v = canonicalize(json!({"b": 1, "a": {"d": 2, "c": 3}}));
        assert_eq!(v.to_string(), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }

    #[test]
    fn keyed_arrays_sort_by_identity() {
        let v = canonicalize(json!([{"key": "b"}, {"key": "a"}, {"key": "c"}]));
        assert_eq!(v, json!([{"key": "a"}, {"key": "b"}, {"key": "c"}]));
    }

    #[test]
    fn order_is_data_elsewhere() {
        // Scalars, mixed, duplicate and mixed-field arrays keep their order.
        for v in [
            json!(["sha256:bb", "sha256:aa"]),
            json!(["Website", "Server"]),
            json!([{"id": "b"}, {"name": "no identity"}, {"id": "a"}]),
            json!([{"id": "b"}, {"id": "a"}, {"id": "b", "x": 1}]),
            json!([{"id": "b"}, {"key": "a"}]),
            json!([{"id": "b"}, 3, {"id": "a"}]),
            json!([]),
        ] {
            assert_eq!(canonicalize(v.clone()), v);
        }
    }

    #[test]
    fn nested_arrays_inside_unkeyed_arrays_are_canonicalised() {
        let v = canonicalize(json!([[{"id": 2}, {"id": 1}], "x"]));
        assert_eq!(v, json!([[{"id": 1}, {"id": 2}], "x"]));
    }

    #[test]
    fn array_identities_rules() {
        assert_eq!(array_identities(&[]), None);
        assert_eq!(
            array_identities(&[json!({"roleId": "r2"}), json!({"roleId": "r1"})]),
            Some(("roleId", vec!["r2".into(), "r1".into()]))
        );
        // A number and a string with the same text are the same identity: duplicates.
        assert_eq!(
            array_identities(&[json!({"id": 1}), json!({"id": "1"})]),
            None
        );
    }
}
