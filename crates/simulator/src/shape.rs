//! What real workspaces vary in: the plan (which features answer at all), API releases that
//! add or drop fields, and malformed records in list pages.
//!
//! Plans and unavailable endpoints are checked before the route runs; releases and malformed
//! items rewrite the JSON body the route produced, so they apply to whatever the state holds at
//! that moment and survive every mutation. A rewritten body is re-serialised from a
//! `serde_json::Value`, so its object keys come out in alphabetical order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SimError;
use super::faults::{BadEventDefect, BadItemShape};

/// A Segment billing plan: which features the workspace's API answers for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Every feature (the default).
    #[default]
    Business,
    /// No user groups, Functions, Protocols (tracking plans) or audit trail: `/groups`,
    /// `/functions`, `/tracking-plans` and `/audit-events` (and everything below them) answer
    /// 403.
    Team,
}

/// Features the Team plan lacks: path prefix and the feature's name in the 403 message.
const TEAM_LACKS: &[(&str, &str)] = &[
    ("/groups", "User groups"),
    ("/functions", "Functions"),
    ("/tracking-plans", "Protocols (tracking plans)"),
    ("/audit-events", "The audit trail"),
];

impl Plan {
    /// The plan's name as `--plan` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Plan::Business => "business",
            Plan::Team => "team",
        }
    }

    /// The name of the feature serving `path` if the plan lacks it.
    fn lacks(self, path: &str) -> Option<&'static str> {
        match self {
            Plan::Business => None,
            Plan::Team => TEAM_LACKS
                .iter()
                .find(|(prefix, _)| under(path, prefix))
                .map(|(_, feature)| *feature),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "business" => Ok(Plan::Business),
            "team" => Ok(Plan::Team),
            other => Err(format!(
                "unknown plan `{other}`; expected `business` or `team`"
            )),
        }
    }
}

/// True if `path` is `prefix` or below it, segment-wise (`/users` covers `/users/u1`, not
/// `/usersx`).
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Why an API request is refused before its route runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 403 `Forbidden`: the feature is not on the plan.
    NotOnPlan {
        /// The feature's name.
        feature: String,
        /// The plan's name.
        plan: &'static str,
    },
    /// 404 `NotFound`: the endpoint does not exist for this token or region.
    Missing,
}

/// The plan in force plus endpoints made unavailable one by one.
#[derive(Debug, Default)]
pub(crate) struct Availability {
    pub(crate) plan: Plan,
    /// Path prefix and status (403 or 404), checked in order before the plan.
    pub(crate) unavailable: Vec<(String, u16)>,
}

impl Availability {
    /// Checks `path` against the unavailable endpoints, then the plan. `GET /` (the workspace)
    /// is always available, as it is for any valid token.
    pub(crate) fn check(&self, path: &str) -> Option<Refusal> {
        if path == "/" {
            return None;
        }
        if let Some((prefix, status)) = self.unavailable.iter().find(|(p, _)| under(path, p)) {
            return Some(match status {
                404 => Refusal::Missing,
                _ => Refusal::NotOnPlan {
                    feature: format!("The endpoint {prefix}"),
                    plan: self.plan.name(),
                },
            });
        }
        self.plan.lacks(path).map(|feature| Refusal::NotOnPlan {
            feature: feature.to_owned(),
            plan: self.plan.name(),
        })
    }

    /// Makes `prefix` answer `status` (403 or 404), or available again with `None`.
    pub(crate) fn set(&mut self, prefix: &str, status: Option<u16>) {
        let prefix = normalise_prefix(prefix);
        self.unavailable.retain(|(p, _)| *p != prefix);
        if let Some(status) = status {
            self.unavailable.push((prefix, status));
        }
    }
}

/// `/users` from `users`, `/users/` or `/users`.
fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_matches('/');
    format!("/{trimmed}")
}

/// Checks a status for [`super::SimHandle::set_unavailable`] and `--unavailable`.
pub(crate) fn unavailable_status(status: u16) -> Result<u16, String> {
    match status {
        403 | 404 => Ok(status),
        other => Err(format!(
            "an unavailable endpoint answers 403 or 404, not {other}"
        )),
    }
}

/// Parses `--unavailable PREFIX[=STATUS]` (status 403 or 404, default 404).
pub(crate) fn parse_unavailable(spec: &str) -> Result<(String, u16), String> {
    let (prefix, status) = match spec.split_once('=') {
        Some((p, s)) => (
            p,
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{spec}`: the status must be 403 or 404, got `{s}`"))?,
        ),
        None => (spec, 404),
    };
    if prefix.trim().trim_matches('/').is_empty() {
        return Err(format!(
            "`{spec}`: name an endpoint such as `/functions` (`GET /` always answers)"
        ));
    }
    Ok((
        normalise_prefix(prefix),
        unavailable_status(status).map_err(|e| format!("`{spec}`: {e}"))?,
    ))
}

/// One step of a release's field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object key.
    Key(String),
    /// Every element of an array (`[]`).
    Each,
}

/// An API release: every item served under `path` carries `field` set to `value`, or loses it
/// (`value` `None`).
///
/// `path` covers its list and its get-by-id route: `/users` rewrites the items of `GET
/// /users` and the object of `GET /users/{id}`, not sub-lists such as `/groups/{id}/users`
/// (give that path itself to rewrite them). `field` is dotted; `[]` means every element of an
/// array: `createdAt`, `permissions[].createdAt`, `settings.newKey`. Keys missing on the way
/// are created as objects when setting, and nothing happens when removing.
///
/// From the command line (`--release SPEC`): `PATH:FIELD` sets the JSON string
/// `"2024-01-01T00:00:00.000Z"` ([`Release::DEFAULT_VALUE`]), `PATH:FIELD=JSON` sets that JSON
/// value (a bare word that is not JSON is taken as a string), and `PATH:-FIELD` removes the
/// field. `PATH` may omit its leading `/`: `users:createdAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The list path whose items change, e.g. `/users`.
    pub path: String,
    /// The dotted field path, e.g. `permissions[].createdAt`.
    pub field: String,
    /// The new value; `None` removes the field.
    #[serde(default)]
    pub value: Option<Value>,
}

impl Release {
    /// What `--release PATH:FIELD` sets: a timestamp, as most added fields are dates.
    pub const DEFAULT_VALUE: &'static str = "2024-01-01T00:00:00.000Z";

    /// A release; fails with [`SimError::Invalid`] naming the problem for a bad path or field.
    pub fn new(path: &str, field: &str, value: Option<Value>) -> Result<Self, SimError> {
        if path.trim().is_empty() {
            return Err(SimError::Invalid(
                "a release needs a path such as `/users`".into(),
            ));
        }
        parse_field(field)
            .map_err(|e| SimError::Invalid(format!("release field `{field}`: {e}")))?;
        Ok(Release {
            path: normalise_prefix(path),
            field: field.to_owned(),
            value,
        })
    }

    /// True if this release rewrites the response to `path`: the list itself or one item of
    /// it (one more path segment).
    fn covers(&self, path: &str) -> bool {
        if self.path == "/" {
            return path == "/";
        }
        match path.strip_prefix(self.path.as_str()) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix('/')
                .is_some_and(|id| !id.is_empty() && !id.contains('/')),
            None => false,
        }
    }

    fn apply(&self, item: &mut Value) {
        // Validated when built; a hand-made release with a bad field does nothing.
        if let Ok(steps) = parse_field(&self.field) {
            apply_steps(item, &steps, self.value.as_ref());
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "{}:-{}", self.path, self.field),
            Some(v) => write!(f, "{}:{}={v}", self.path, self.field),
        }
    }
}

impl FromStr for Release {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| {
            SimError::Invalid(format!(
                "invalid release `{spec}`: {reason} (expected e.g. `users:createdAt`, \
                 `users:permissions[].createdAt=null` or `users:-email`)"
            ))
        };
        let (path, rest) = spec
            .split_once(':')
            .ok_or_else(|| invalid("no `:` between path and field".into()))?;
        let (field, value) = match rest.split_once('=') {
            Some((field, raw)) => {
                let raw = raw.trim();
                let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
                (field.trim(), Some(value))
            }
            None => match rest.trim().strip_prefix('-') {
                Some(field) => (field.trim(), None),
                None => (rest.trim(), Some(Value::from(Release::DEFAULT_VALUE))),
            },
        };
        Release::new(path, field, value).map_err(|e| invalid(e.to_string()))
    }
}

fn parse_field(field: &str) -> Result<Vec<Step>, String> {
    if field.trim().is_empty() {
        return Err("empty field".into());
    }
    let mut steps = Vec::new();
    for part in field.split('.') {
        let mut name = part;
        let mut each = 0;
        while let Some(stripped) = name.strip_suffix("[]") {
            name = stripped;
            each += 1;
        }
        if name.is_empty() || name.contains(['[', ']']) {
            return Err(format!(
                "`{part}` is not a key (optionally followed by `[]`)"
            ));
        }
        steps.push(Step::Key(name.to_owned()));
        steps.extend(std::iter::repeat_n(Step::Each, each));
    }
    if steps.last() == Some(&Step::Each) {
        return Err("the path must end with a key, not `[]`".into());
    }
    Ok(steps)
}

fn apply_steps(value: &mut Value, steps: &[Step], new: Option<&Value>) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    match step {
        Step::Each => {
            if let Value::Array(items) = value {
                for item in items {
                    apply_steps(item, rest, new);
                }
            }
        }
        Step::Key(key) => {
            let Value::Object(map) = value else {
                return;
            };
            if rest.is_empty() {
                match new {
                    Some(v) => {
                        map.insert(key.clone(), v.clone());
                    }
                    None => {
                        map.remove(key);
                    }
                }
                return;
            }
            let creates = new.is_some() && matches!(rest.first(), Some(Step::Key(_)));
            match map.get_mut(key) {
                Some(inner) => apply_steps(inner, rest, new),
                None if creates => {
                    let mut inner = Value::Object(serde_json::Map::new());
                    apply_steps(&mut inner, rest, new);
                    map.insert(key.clone(), inner);
                }
                None => {}
            }
        }
    }
}

/// The items of a `{"data": {KEY: items-or-object, "pagination": …}}` body.
fn data_items(body: &mut Value) -> impl Iterator<Item = &mut Value> {
    body.get_mut("data")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|data| data.iter_mut())
        .filter(|(key, _)| key.as_str() != "pagination")
        .flat_map(|(_, value)| match value {
            Value::Array(items) => items.iter_mut().collect::<Vec<_>>(),
            other @ Value::Object(_) => vec![other],
            _ => Vec::new(),
        })
}

/// The list array of a paginated body.
fn page_items(body: &mut Value) -> Option<&mut Vec<Value>> {
    body.get_mut("data")?
        .as_object_mut()?
        .iter_mut()
        .find(|(key, value)| key.as_str() != "pagination" && value.is_array())
        .and_then(|(_, value)| value.as_array_mut())
}

/// Applies every release covering `path` to `body`; true if one did.
pub(crate) fn apply_releases(releases: &[Release], path: &str, body: &mut Value) -> bool {
    let covering: Vec<&Release> = releases.iter().filter(|r| r.covers(path)).collect();
    if covering.is_empty() {
        return false;
    }
    for item in data_items(body) {
        for release in &covering {
            release.apply(item);
        }
    }
    true
}

/// True if any release covers `path` (so the body needs rewriting).
pub(crate) fn any_release_covers(releases: &[Release], path: &str) -> bool {
    releases.iter().any(|r| r.covers(path))
}

/// Adds (or, for `All`, makes) malformed items in a list page.
pub(crate) fn add_bad_item(body: &mut Value, shape: BadItemShape) {
    let Some(items) = page_items(body) else {
        return;
    };
    let template = || {
        items
            .iter()
            .find(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"name": "malformed item"}))
    };
    let bad = match shape {
        BadItemShape::All => {
            for item in items.iter_mut() {
                if let Value::Object(map) = item {
                    map.remove("id");
                }
            }
            return;
        }
        BadItemShape::NoId => {
            let mut item = template();
            if let Value::Object(map) = &mut item {
                map.remove("id");
            }
            item
        }
        BadItemShape::NullId => {
            let mut item = template();
            if let Value::Object(map) = &mut item {
                map.insert("id".into(), Value::Null);
            }
            item
        }
        BadItemShape::NotObject => Value::from("not-an-object"),
        BadItemShape::Repeat => {
            if items.len() >= 2 {
                items[0] = items[1].clone();
            }
            return;
        }
        BadItemShape::Drop => {
            items.pop();
            return;
        }
    };
    let at = items.len() / 2;
    items.insert(at, bad);
}

/// Adds an audit event with a broken timestamp to a page of events.
pub(crate) fn add_bad_event(body: &mut Value, defect: BadEventDefect) {
    let Some(items) = page_items(body) else {
        return;
    };
    let mut event = items
        .iter()
        .find(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| {
            serde_json::json!({
                "id": "events/0",
                "type": "User Policy Updated",
                "actor": "public-api-token/malformed",
                "resourceId": "malformed",
                "resourceType": "user",
                "resourceName": "malformed",
            })
        });
    if let Value::Object(map) = &mut event {
        let id = map.get("id").and_then(Value::as_str).unwrap_or("events/0");
        let id = format!("{id}-malformed");
        map.insert("id".into(), Value::from(id));
        match defect {
            BadEventDefect::TimestampNotADate => {
                map.insert("timestamp".into(), Value::from("yesterday"));
            }
            BadEventDefect::NoTimestamp => {
                map.remove("timestamp");
            }
        }
    }
    let at = items.len() / 2;
    items.insert(at, event);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_paths_set_and_remove_nested_fields() {
        let mut user = json!({"id": "u1", "permissions": [{"roleId": "r1"}, {"roleId": "r2"}],
                              "settings": {"a": 1}});
        for (field, value) in [
            ("createdAt", Some(json!("t"))),
            ("permissions[].createdAt", Some(json!(null))),
            ("settings.newKey", Some(json!(true))),
            ("extra.deep.key", Some(json!(1))),
            ("missing[].key", Some(json!(1))),
            ("settings.a", None),
            ("nothing.here", None),
        ] {
            Release::new("/users", field, value)
                .unwrap()
                .apply(&mut user);
        }
        assert_eq!(
            user,
            json!({"id": "u1", "createdAt": "t",
                   "permissions": [{"roleId": "r1", "createdAt": null},
                                   {"roleId": "r2", "createdAt": null}],
                   "settings": {"newKey": true}, "extra": {"deep": {"key": 1}}})
        );
    }

    #[test]
    fn bad_fields_and_specs_are_refused() {
        for field in ["", "a..b", "[]", "a[]", "a[0].b", "a.b[]"] {
            assert!(Release::new("/users", field, None).is_err(), "{field}");
        }
        let r: Release = "users:createdAt".parse().unwrap();
        assert_eq!(
            r,
            Release::new("/users", "createdAt", Some(json!(Release::DEFAULT_VALUE))).unwrap()
        );
        let r: Release = "/users:permissions[].x={\"a\":1}".parse().unwrap();
        assert_eq!(r.value, Some(json!({"a": 1})));
        let r: Release = "sources:-writeKeys".parse().unwrap();
        assert_eq!((r.path.as_str(), r.value), ("/sources", None));
        let r: Release = "users:plan=gold".parse().unwrap();
        assert_eq!(r.value, Some(json!("gold")));
        assert_eq!(r.to_string().parse::<Release>().unwrap(), r);
        let err = "users".parse::<Release>().unwrap_err().to_string();
        assert!(err.contains("invalid release `users`"), "{err}");
        assert!(":x".parse::<Release>().is_err());
    }

    #[test]
    fn releases_cover_the_list_and_its_items_only() {
        let r = Release::new("/users", "x", None).unwrap();
        assert!(r.covers("/users"));
        assert!(r.covers("/users/u1"));
        assert!(!r.covers("/users/u1/more"));
        assert!(!r.covers("/usersx"));
        assert!(!r.covers("/groups/g1/users"));
        let root = Release::new("/", "x", None).unwrap();
        assert!(root.covers("/") && !root.covers("/users"));
    }

    #[test]
    fn plans_and_unavailable_endpoints() {
        let mut a = Availability::default();
        assert_eq!(a.check("/groups"), None);
        a.plan = Plan::Team;
        for path in [
            "/groups",
            "/groups/g1/users",
            "/functions",
            "/tracking-plans/t/sources",
            "/audit-events",
        ] {
            assert!(
                matches!(a.check(path), Some(Refusal::NotOnPlan { .. })),
                "{path}"
            );
        }
        for path in ["/", "/users", "/sources", "/groupsx"] {
            assert_eq!(a.check(path), None, "{path}");
        }
        a.set("warehouses/", Some(404));
        assert_eq!(a.check("/warehouses/w1"), Some(Refusal::Missing));
        a.set("/warehouses", None);
        assert_eq!(a.check("/warehouses/w1"), None);
        assert_eq!(
            parse_unavailable("/functions"),
            Ok(("/functions".into(), 404))
        );
        assert_eq!(parse_unavailable("groups=403"), Ok(("/groups".into(), 403)));
        assert!(
            parse_unavailable("/groups=500")
                .unwrap_err()
                .contains("403 or 404")
        );
        assert!(parse_unavailable("/").is_err());
        assert_eq!("Team".parse::<Plan>(), Ok(Plan::Team));
        assert!(
            "free"
                .parse::<Plan>()
                .unwrap_err()
                .contains("unknown plan `free`")
        );
    }
}
