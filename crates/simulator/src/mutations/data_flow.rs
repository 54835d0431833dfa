//! The mutations of destinations, warehouses, functions and tracking plans, and the audit
//! trail entry each one leaves.

use fastrand::Rng;

use crate::SimError;
use crate::audit::Touched;
use crate::generate;
use crate::state::{Destination, Warehouse, WorkspaceState};

use super::{Mutation, not_found};

/// The mutations of destinations, warehouses, functions and tracking plans.
pub(super) fn data_flow(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    m: Mutation,
) -> Result<String, SimError> {
    let destination = |st: &WorkspaceState, id: &str| {
        st.destination_position(id)
            .ok_or_else(|| not_found("destination", id))
    };
    let warehouse = |st: &WorkspaceState, id: &str| {
        st.warehouse_position(id)
            .ok_or_else(|| not_found("warehouse", id))
    };
    let function = |st: &WorkspaceState, id: &str| {
        st.function_position(id)
            .ok_or_else(|| not_found("function", id))
    };
    let plan = |st: &WorkspaceState, id: &str| {
        st.tracking_plan_position(id)
            .ok_or_else(|| not_found("tracking plan", id))
    };
    Ok(match m {
        Mutation::AddDestination { source_id, name } => {
            let source = st
                .source(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            let source_name = source.name.clone();
            let catalog = rng.usize(..8);
            let id = loop {
                let id = generate::random_id(rng);
                if st.destination_position(&id).is_none() {
                    break id;
                }
            };
            st.destinations.push(Destination {
                id,
                name: name.clone(),
                enabled: true,
                metadata: generate::destination_metadata(catalog),
                source_id,
                settings: generate::destination_settings(rng, catalog),
                filters: Vec::new(),
                subscriptions: Vec::new(),
            });
            st.reindex_flow();
            format!("connected destination \"{name}\" to source \"{source_name}\"")
        }
        Mutation::RemoveDestination { destination_id } => {
            let pos = destination(st, &destination_id)?;
            let removed = st.destinations.remove(pos);
            st.reindex_flow();
            format!("deleted destination \"{}\"", removed.name)
        }
        Mutation::SetDestinationSetting {
            destination_id,
            key,
            value,
        } => {
            if key.is_empty() {
                return Err(SimError::Invalid("a setting key must not be empty".into()));
            }
            let pos = destination(st, &destination_id)?;
            let d = &mut st.destinations[pos];
            if d.settings.get(&key) == Some(&value) {
                return Err(SimError::Conflict(format!(
                    "setting `{key}` of destination \"{}\" already has that value",
                    d.name
                )));
            }
            d.settings.insert(key.clone(), value);
            format!("changed setting `{key}` of destination \"{}\"", d.name)
        }
        Mutation::SetDestinationEnabled {
            destination_id,
            enabled,
        } => {
            let pos = destination(st, &destination_id)?;
            let d = &mut st.destinations[pos];
            let was = std::mem::replace(&mut d.enabled, enabled);
            if was == enabled {
                return Err(SimError::Conflict(format!(
                    "destination \"{}\" is already {}",
                    d.name,
                    if enabled { "enabled" } else { "disabled" }
                )));
            }
            let verb = if enabled { "enabled" } else { "disabled" };
            format!("{verb} destination \"{}\"", d.name)
        }
        Mutation::RotateWarehouseCredential { warehouse_id } => {
            let pos = warehouse(st, &warehouse_id)?;
            let w = &mut st.warehouses[pos];
            let field = if w.settings.contains_key("password") {
                w.settings.insert(
                    "password".into(),
                    serde_json::Value::String(generate::random_password(rng)),
                );
                "password"
            } else {
                let key = generate::random_secret(rng, 64);
                w.settings.insert(
                    "credentials".into(),
                    serde_json::Value::String(format!(
                        "{{\"type\":\"service_account\",\"private_key\":\"{key}\"}}"
                    )),
                );
                "credentials"
            };
            format!("rotated the {field} of warehouse \"{}\"", warehouse_name(w))
        }
        Mutation::SetWarehouseHost { warehouse_id, host } => {
            if host.trim().is_empty() {
                return Err(SimError::Invalid("a host must not be empty".into()));
            }
            let pos = warehouse(st, &warehouse_id)?;
            let w = &mut st.warehouses[pos];
            let old = w
                .settings
                .insert("host".into(), serde_json::Value::String(host.clone()));
            match old {
                Some(serde_json::Value::String(old)) if old == host => {
                    return Err(SimError::Conflict(format!(
                        "warehouse \"{}\" already points at {host}",
                        warehouse_name(w)
                    )));
                }
                _ => format!("pointed warehouse \"{}\" at {host}", warehouse_name(w)),
            }
        }
        Mutation::SetWarehouseEnabled {
            warehouse_id,
            enabled,
        } => {
            let pos = warehouse(st, &warehouse_id)?;
            let w = &mut st.warehouses[pos];
            if std::mem::replace(&mut w.enabled, enabled) == enabled {
                return Err(SimError::Conflict(format!(
                    "warehouse \"{}\" is already {}",
                    warehouse_name(w),
                    if enabled { "enabled" } else { "disabled" }
                )));
            }
            let verb = if enabled { "enabled" } else { "disabled" };
            format!("{verb} warehouse \"{}\"", warehouse_name(w))
        }
        Mutation::AddFunction {
            display_name,
            resource_type,
        } => {
            if !generate::FUNCTION_TYPES.contains(&resource_type.as_str()) {
                return Err(SimError::Invalid(format!(
                    "unknown function type `{resource_type}`"
                )));
            }
            let id = loop {
                let id = generate::random_id(rng);
                if st.function_position(&id).is_none() {
                    break id;
                }
            };
            let created_by = st.users.first().map_or_else(String::new, |u| u.id.clone());
            let f =
                generate::new_function(rng, id, display_name.clone(), &resource_type, created_by);
            st.functions.push(f);
            st.reindex_flow();
            format!(
                "deployed new {} function \"{display_name}\"",
                resource_type.to_ascii_lowercase()
            )
        }
        Mutation::DeployFunction { function_id, code } => {
            let pos = function(st, &function_id)?;
            let f = &mut st.functions[pos];
            let version = f
                .code
                .strip_prefix("// version ")
                .and_then(|rest| rest.split('\n').next())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1);
            let code =
                code.unwrap_or_else(|| generate::function_code(&f.resource_type, version + 1));
            if code == f.code {
                return Err(SimError::Conflict(format!(
                    "function \"{}\" already runs that code",
                    f.display_name
                )));
            }
            f.code = code;
            f.deployed_at = Some(generate::random_timestamp(rng, 2026));
            format!("deployed new code for function \"{}\"", f.display_name)
        }
        Mutation::RemoveFunction { function_id } => {
            let pos = function(st, &function_id)?;
            let removed = st.functions.remove(pos);
            st.reindex_flow();
            format!("deleted function \"{}\"", removed.display_name)
        }
        Mutation::ConnectTrackingPlan {
            tracking_plan_id,
            source_id,
        } => {
            let pos = plan(st, &tracking_plan_id)?;
            let source_name = st
                .source(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?
                .name
                .clone();
            let tp = &mut st.tracking_plans[pos];
            if tp.source_ids.contains(&source_id) {
                return Err(SimError::Conflict(format!(
                    "tracking plan \"{}\" is already connected to source \"{source_name}\"",
                    tp.name
                )));
            }
            tp.source_ids.push(source_id);
            format!(
                "connected tracking plan \"{}\" to source \"{source_name}\"",
                tp.name
            )
        }
        Mutation::DisconnectTrackingPlan {
            tracking_plan_id,
            source_id,
        } => {
            let pos = plan(st, &tracking_plan_id)?;
            let source_name = st
                .source(&source_id)
                .map_or_else(|| source_id.clone(), |s| s.name.clone());
            let tp = &mut st.tracking_plans[pos];
            let Some(i) = tp.source_ids.iter().position(|s| s == &source_id) else {
                return Err(SimError::Conflict(format!(
                    "tracking plan \"{}\" is not connected to source \"{source_name}\"",
                    tp.name
                )));
            };
            tp.source_ids.remove(i);
            format!(
                "disconnected tracking plan \"{}\" from source \"{source_name}\"",
                tp.name
            )
        }
        other => unreachable!("not a data-flow mutation: {other:?}"),
    })
}

fn warehouse_name(w: &Warehouse) -> String {
    w.settings
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(&w.id)
        .to_owned()
}

/// Which resource a data-flow mutation touches, as the audit trail names it; resolved after the
/// mutation ran (an added resource's id only exists then).
pub(super) struct FlowTarget {
    event_type: &'static str,
    resource_type: &'static str,
    /// `None`: the resource the mutation adds (the last of its list).
    id: Option<String>,
}

impl FlowTarget {
    pub(super) fn resolve(self, st: &WorkspaceState) -> Option<Touched> {
        let (id, name) = match self.resource_type {
            "destination" => {
                let d = match &self.id {
                    Some(id) => st.destinations.iter().find(|d| &d.id == id),
                    None => st.destinations.last(),
                };
                d.map(|d| (d.id.clone(), d.name.clone()))
                    .or_else(|| self.id.clone().map(|id| (id.clone(), id)))?
            }
            "warehouse" => {
                let id = self.id.clone()?;
                let name = st
                    .warehouses
                    .iter()
                    .find(|w| w.id == id)
                    .map_or_else(|| id.clone(), warehouse_name);
                (id, name)
            }
            "function" => {
                let f = match &self.id {
                    Some(id) => st.functions.iter().find(|f| &f.id == id),
                    None => st.functions.last(),
                };
                f.map(|f| (f.id.clone(), f.display_name.clone()))
                    .or_else(|| self.id.clone().map(|id| (id.clone(), id)))?
            }
            _ => {
                let id = self.id.clone()?;
                let name = st
                    .tracking_plans
                    .iter()
                    .find(|t| t.id == id)
                    .map_or_else(|| id.clone(), |t| t.name.clone());
                (id, name)
            }
        };
        Some(Touched::new(self.event_type, self.resource_type, id, name))
    }
}

pub(super) fn flow_target(m: &Mutation) -> Option<FlowTarget> {
    let target = |event_type, resource_type, id: &String| FlowTarget {
        event_type,
        resource_type,
        id: Some(id.clone()),
    };
    Some(match m {
        Mutation::AddDestination { .. } => FlowTarget {
            event_type: "Destination Created",
            resource_type: "destination",
            id: None,
        },
        Mutation::RemoveDestination { destination_id } => {
            target("Destination Deleted", "destination", destination_id)
        }
        Mutation::SetDestinationSetting { destination_id, .. }
        | Mutation::SetDestinationEnabled { destination_id, .. } => {
            target("Destination Modified", "destination", destination_id)
        }
        Mutation::RotateWarehouseCredential { warehouse_id }
        | Mutation::SetWarehouseHost { warehouse_id, .. }
        | Mutation::SetWarehouseEnabled { warehouse_id, .. } => {
            target("Warehouse Modified", "warehouse", warehouse_id)
        }
        Mutation::AddFunction { .. } => FlowTarget {
            event_type: "Function Created",
            resource_type: "function",
            id: None,
        },
        Mutation::DeployFunction { function_id, .. } => {
            target("Function Deployed", "function", function_id)
        }
        Mutation::RemoveFunction { function_id } => {
            target("Function Deleted", "function", function_id)
        }
        Mutation::ConnectTrackingPlan {
            tracking_plan_id, ..
        }
        | Mutation::DisconnectTrackingPlan {
            tracking_plan_id, ..
        } => target("Tracking Plan Modified", "tracking_plan", tracking_plan_id),
        _ => return None,
    })
}
