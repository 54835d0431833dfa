//! Relationships between the resources of one snapshot: which destinations, warehouses and
//! tracking plans a source feeds, which groups a user is in, and back.
//!
//! [`Relations::build`] indexes a snapshot once (only the few bodies that carry relationships
//! are parsed: destinations, warehouses, tracking plans and groups, never the users), and
//! [`Relations::related`] gives one subject's related resources as the `related` variable rules
//! read (see `docs/RULES.md`). Bodies are parsed only for the subject asked about.
//!
//! | subject | `related` |
//! |---|---|
//! | destination | `source`: the source feeding it (`sourceId`), or `null`; `filters`, `subscriptions`: its destination filters' and Actions subscriptions' bodies |
//! | transformation, reverse ETL model | `source`: the source whose events it transforms or whose warehouse it queries (`sourceId`), or `null` |
//! | source schema settings | `source`: the source (`sourceId`), or `null`; `tracking_plans`: the plans validating it |
//! | destination filter, destination subscription | `destination`: the destination it filters (`destinationId`), or `null`; `source`: that destination's source (else the filter's own `sourceId`), or `null` |
//! | source | `destinations`, `warehouses`, `tracking_plans`, `transformations`: lists of bodies; `schema_settings`: a body or `null` |
//! | warehouse, tracking plan | `sources`: the connected sources' bodies |
//! | user | `groups`: the groups listing the user as a member, without their `members` and `invites` |
//! | group | `members`: the members' user bodies (with their permissions) |
//! | any other kind | `{}` |

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::model::{Resource, ResourceKind};

/// The relationship indexes of one snapshot, borrowing its resources.
#[derive(Debug, Default)]
pub struct Relations<'a> {
    /// The bodies of the snapshot's resources, by position.
    bodies: Vec<&'a str>,
    /// Position of each source, user, destination and source schema settings by id.
    by_id: HashMap<(ResourceKind, &'a str), usize>,
    /// A destination's source id, by the destination's position.
    source_of_destination: HashMap<usize, String>,
    /// Connected source ids of warehouses and tracking plans, by their position.
    sources_of: HashMap<usize, Vec<String>>,
    /// Member user ids of each group, by the group's position.
    members_of: HashMap<usize, Vec<String>>,
    /// Positions of a source's destinations, warehouses and tracking plans, by source id.
    from_source: HashMap<String, FromSource>,
    /// Positions of the groups listing a user, by user id.
    groups_of: HashMap<String, Vec<usize>>,
    /// Positions of what stands on a destination's way (its filters), by destination id.
    on_destination: HashMap<String, OnDestination>,
}

#[derive(Debug, Default)]
struct OnDestination {
    filters: Vec<usize>,
    subscriptions: Vec<usize>,
}

#[derive(Debug, Default)]
struct FromSource {
    destinations: Vec<usize>,
    warehouses: Vec<usize>,
    tracking_plans: Vec<usize>,
    transformations: Vec<usize>,
}

impl<'a> Relations<'a> {
    /// Indexes the relationships among `resources` (one snapshot).
    pub fn build(resources: &'a [Resource]) -> Self {
        Self::from_parts(
            resources
                .iter()
                .map(|r| (r.kind, r.id.as_str(), r.body.as_str())),
        )
    }

    /// Indexes the relationships among resources given as (kind, id, canonical JSON body).
    pub fn from_parts(
        resources: impl IntoIterator<Item = (ResourceKind, &'a str, &'a str)>,
    ) -> Self {
        let mut r = Relations::default();
        for (i, (kind, id, body)) in resources.into_iter().enumerate() {
            r.bodies.push(body);
            match kind {
                ResourceKind::Source | ResourceKind::User => {
                    r.by_id.insert((kind, id), i);
                }
                ResourceKind::SourceSchemaSettings => {
                    r.by_id.insert((kind, id), i);
                }
                ResourceKind::Transformation => {
                    if let Some(source) = parse_body(body).get("sourceId").and_then(Value::as_str) {
                        let entry = r.from_source.entry(source.to_string()).or_default();
                        entry.transformations.push(i);
                    }
                }
                ResourceKind::DestinationFilter | ResourceKind::DestinationSubscription => {
                    let body = parse_body(body);
                    if let Some(d) = body.get("destinationId").and_then(Value::as_str) {
                        let on = r.on_destination.entry(d.to_string()).or_default();
                        if kind == ResourceKind::DestinationFilter {
                            on.filters.push(i);
                        } else {
                            on.subscriptions.push(i);
                        }
                    }
                }
                ResourceKind::Destination => {
                    r.by_id.insert((kind, id), i);
                    let body = parse_body(body);
                    if let Some(source) = body.get("sourceId").and_then(Value::as_str) {
                        r.from_source
                            .entry(source.to_string())
                            .or_default()
                            .destinations
                            .push(i);
                        r.source_of_destination.insert(i, source.to_string());
                    }
                }
                ResourceKind::Warehouse | ResourceKind::TrackingPlan => {
                    let field = if kind == ResourceKind::Warehouse {
                        "connectedSourceIds"
                    } else {
                        "sourceIds"
                    };
                    let ids = string_list(&parse_body(body), field, None);
                    for source in &ids {
                        let entry = r.from_source.entry(source.clone()).or_default();
                        if kind == ResourceKind::Warehouse {
                            entry.warehouses.push(i);
                        } else {
                            entry.tracking_plans.push(i);
                        }
                    }
                    r.sources_of.insert(i, ids);
                }
                ResourceKind::Group => {
                    let ids = string_list(&parse_body(body), "members", Some("id"));
                    for user in &ids {
                        r.groups_of.entry(user.clone()).or_default().push(i);
                    }
                    r.members_of.insert(i, ids);
                }
                _ => {}
            }
        }
        r
    }

    /// The `related` map of the resource `kind`/`id` (see the module docs). A subject that is not
    /// in the snapshot (e.g. removed) is looked up by the relationships the others declare.
    pub fn related(&self, kind: ResourceKind, id: &str, body: &Value) -> Value {
        let mut out = Map::new();
        match kind {
            ResourceKind::Destination => {
                let source = body
                    .get("sourceId")
                    .and_then(Value::as_str)
                    .and_then(|s| self.body_of(ResourceKind::Source, s))
                    .unwrap_or(Value::Null);
                out.insert("source".into(), source);
                let on = self.on_destination.get(id);
                let list = |pick: fn(&OnDestination) -> &Vec<usize>| {
                    on.map_or_else(Vec::new, |o| self.bodies(pick(o)))
                };
                out.insert("filters".into(), Value::Array(list(|o| &o.filters)));
                out.insert(
                    "subscriptions".into(),
                    Value::Array(list(|o| &o.subscriptions)),
                );
            }
            ResourceKind::Transformation | ResourceKind::ReverseEtlModel => {
                let source = body
                    .get("sourceId")
                    .and_then(Value::as_str)
                    .and_then(|s| self.body_of(ResourceKind::Source, s))
                    .unwrap_or(Value::Null);
                out.insert("source".into(), source);
            }
            ResourceKind::SourceSchemaSettings => {
                let source_id = body.get("sourceId").and_then(Value::as_str).unwrap_or(id);
                let plans = self
                    .from_source
                    .get(source_id)
                    .map_or_else(Vec::new, |f| self.bodies(&f.tracking_plans));
                out.insert(
                    "source".into(),
                    self.body_of(ResourceKind::Source, source_id)
                        .unwrap_or(Value::Null),
                );
                out.insert("tracking_plans".into(), Value::Array(plans));
            }
            ResourceKind::DestinationFilter | ResourceKind::DestinationSubscription => {
                let destination = body
                    .get("destinationId")
                    .and_then(Value::as_str)
                    .and_then(|d| self.body_of(ResourceKind::Destination, d));
                // The destination's source, else the one the item names itself.
                let source_id = destination
                    .as_ref()
                    .and_then(|d| d.get("sourceId"))
                    .or_else(|| body.get("sourceId"))
                    .and_then(Value::as_str);
                let source = source_id
                    .and_then(|s| self.body_of(ResourceKind::Source, s))
                    .unwrap_or(Value::Null);
                out.insert("destination".into(), destination.unwrap_or(Value::Null));
                out.insert("source".into(), source);
            }
            ResourceKind::Source => {
                let from = self.from_source.get(id);
                let list = |pick: fn(&FromSource) -> &Vec<usize>| {
                    from.map_or_else(Vec::new, |f| self.bodies(pick(f)))
                };
                out.insert(
                    "destinations".into(),
                    Value::Array(list(|f| &f.destinations)),
                );
                out.insert("warehouses".into(), Value::Array(list(|f| &f.warehouses)));
                out.insert(
                    "tracking_plans".into(),
                    Value::Array(list(|f| &f.tracking_plans)),
                );
                out.insert(
                    "transformations".into(),
                    Value::Array(list(|f| &f.transformations)),
                );
                out.insert(
                    "schema_settings".into(),
                    self.body_of(ResourceKind::SourceSchemaSettings, id)
                        .unwrap_or(Value::Null),
                );
            }
            ResourceKind::Warehouse | ResourceKind::TrackingPlan => {
                let field = if kind == ResourceKind::Warehouse {
                    "connectedSourceIds"
                } else {
                    "sourceIds"
                };
                let sources = string_list(body, field, None)
                    .iter()
                    .filter_map(|s| self.body_of(ResourceKind::Source, s))
                    .collect();
                out.insert("sources".into(), Value::Array(sources));
            }
            ResourceKind::User => {
                let groups = self
                    .groups_of
                    .get(id)
                    .map_or_else(Vec::new, |positions| self.bodies(positions))
                    .into_iter()
                    .map(|mut group| {
                        // A user rule asks what the group grants, not who else is in it.
                        if let Value::Object(map) = &mut group {
                            map.remove("members");
                            map.remove("invites");
                        }
                        group
                    })
                    .collect();
                out.insert("groups".into(), Value::Array(groups));
            }
            ResourceKind::Group => {
                let members = string_list(body, "members", Some("id"))
                    .iter()
                    .filter_map(|u| self.body_of(ResourceKind::User, u))
                    .collect();
                out.insert("members".into(), Value::Array(members));
            }
            ResourceKind::Workspace
            | ResourceKind::Role
            | ResourceKind::Invite
            | ResourceKind::Label
            | ResourceKind::Function
            | ResourceKind::AuditEvent
            | ResourceKind::Access => {}
        }
        Value::Object(out)
    }

    fn body_of(&self, kind: ResourceKind, id: &str) -> Option<Value> {
        self.by_id
            .get(&(kind, id))
            .map(|&i| parse_body(self.bodies[i]))
    }

    fn bodies(&self, positions: &[usize]) -> Vec<Value> {
        positions
            .iter()
            .map(|&i| parse_body(self.bodies[i]))
            .collect()
    }
}

fn parse_body(body: &str) -> Value {
    // Bodies come from the collector or the store, both canonical JSON; a body that is not
    // (a damaged database) relates to nothing rather than stopping the evaluation.
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// The strings of the array `field` of `body` (or of each element's `inner` field).
fn string_list(body: &Value, field: &str, inner: Option<&str>) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| match inner {
            Some(inner) => item.get(inner).and_then(Value::as_str),
            None => item.as_str(),
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res(kind: ResourceKind, id: &str, body: Value) -> Resource {
        Resource::new(kind, id.into(), id.into(), body)
    }

    #[test]
    fn sources_destinations_warehouses_plans_users_and_groups() {
        let resources = vec![
            res(
                ResourceKind::Source,
                "s1",
                json!({"id": "s1", "labels": [{"key": "environment", "value": "prod"}]}),
            ),
            res(ResourceKind::Source, "s2", json!({"id": "s2"})),
            res(
                ResourceKind::Destination,
                "d1",
                json!({"id": "d1", "sourceId": "s1"}),
            ),
            res(
                ResourceKind::Destination,
                "d2",
                json!({"id": "d2", "sourceId": "gone"}),
            ),
            res(
                ResourceKind::Warehouse,
                "w1",
                json!({"id": "w1", "connectedSourceIds": ["s1", "s2"]}),
            ),
            res(
                ResourceKind::TrackingPlan,
                "t1",
                json!({"id": "t1", "sourceIds": ["s2"]}),
            ),
            res(
                ResourceKind::User,
                "u1",
                json!({"id": "u1", "email": "a@x.io"}),
            ),
            res(
                ResourceKind::Group,
                "g1",
                json!({"id": "g1", "members": [{"id": "u1"}], "invites": ["b@x.io"]}),
            ),
        ];
        let r = Relations::build(&resources);
        let body = |i: usize| serde_json::from_str::<Value>(&resources[i].body).unwrap();
        let d1 = r.related(ResourceKind::Destination, "d1", &body(2));
        assert_eq!(d1["source"]["id"], "s1");
        assert_eq!(d1["source"]["labels"][0]["value"], "prod");
        assert_eq!(
            r.related(ResourceKind::Destination, "d2", &body(3)),
            json!({"source": null, "filters": [], "subscriptions": []})
        );
        let s1 = r.related(ResourceKind::Source, "s1", &body(0));
        assert_eq!(s1["destinations"][0]["id"], "d1");
        assert_eq!(s1["warehouses"][0]["id"], "w1");
        assert_eq!(s1["tracking_plans"], json!([]));
        assert_eq!(s1["schema_settings"], Value::Null);
        let s2 = r.related(ResourceKind::Source, "s2", &body(1));
        assert_eq!(s2["tracking_plans"][0]["id"], "t1");
        let w1 = r.related(ResourceKind::Warehouse, "w1", &body(4));
        assert_eq!(w1["sources"].as_array().unwrap().len(), 2);
        let u1 = r.related(ResourceKind::User, "u1", &body(6));
        assert_eq!(u1, json!({"groups": [{"id": "g1"}]}));
        let g1 = r.related(ResourceKind::Group, "g1", &body(7));
        assert_eq!(g1["members"][0]["email"], "a@x.io");
        assert_eq!(r.related(ResourceKind::Label, "k:v", &json!({})), json!({}));
        // A removed destination still finds its source through its own body.
        let removed = json!({"id": "d9", "sourceId": "s2"});
        assert_eq!(
            r.related(ResourceKind::Destination, "d9", &removed)["source"]["id"],
            "s2"
        );
    }

    #[test]
    fn destinations_and_their_filters() {
        let resources = vec![
            res(
                ResourceKind::Source,
                "s1",
                json!({"id": "s1", "labels": [{"key": "environment", "value": "prod"}]}),
            ),
            res(
                ResourceKind::Destination,
                "d1",
                json!({"id": "d1", "sourceId": "s1"}),
            ),
            res(
                ResourceKind::DestinationFilter,
                "f1",
                json!({"id": "f1", "destinationId": "d1", "sourceId": "s1", "enabled": true}),
            ),
        ];
        let r = Relations::build(&resources);
        let body = |i: usize| serde_json::from_str::<Value>(&resources[i].body).unwrap();
        let d1 = r.related(ResourceKind::Destination, "d1", &body(1));
        assert_eq!(d1["filters"][0]["id"], "f1");
        let f1 = r.related(ResourceKind::DestinationFilter, "f1", &body(2));
        assert_eq!(f1["destination"]["id"], "d1");
        assert_eq!(f1["source"]["labels"][0]["value"], "prod");
        // A filter removed with its destination still finds the source it names.
        let orphan = json!({"id": "f9", "destinationId": "gone", "sourceId": "s1"});
        let f9 = r.related(ResourceKind::DestinationFilter, "f9", &orphan);
        assert_eq!(f9["destination"], Value::Null);
        assert_eq!(f9["source"]["id"], "s1");
    }
}
