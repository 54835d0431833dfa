//! Security-relevant changes to the simulated workspace, applied atomically.
//!
//! Every mutation validates its targets before touching anything, so a failed mutation
//! leaves the state unchanged, and keeps the invariants checked by
//! [`WorkspaceState::check_invariants`].

use fastrand::Rng;
use serde::{Deserialize, Serialize};

use super::SimError;
use super::audit::Touched;
use super::generate::{
    self, ENVIRONMENTS, EXTRA_WORKSPACE_ROLES, MINIMAL_ACCESS, SOURCE_ADMIN, TEAMS,
    WORKSPACE_OWNER, distinct_indices, pick,
};
use super::state::{Destination, Label, Warehouse, WorkspaceState};

/// A change to the workspace. Serialised with an `op` tag, e.g.
/// `{"op":"grant_role","user_id":"…","role_name":"Workspace Owner"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Adds a user holding `role_name` on the workspace. A pending invite for the email is
    /// accepted: it disappears and the user joins the groups that invited them.
    AddUser {
        /// Login email; must be unused.
        email: String,
        /// Display name (may be empty).
        name: String,
        /// Role granted on the workspace.
        role_name: String,
    },
    /// Adds back a user whose Segment account already exists, keeping its id (a Segment user is
    /// an account that outlives one workspace membership), holding `role_name` on the
    /// workspace. A pending invite for the email is accepted as with `AddUser`.
    AddExistingUser {
        /// The account's user id; must not be a current user.
        user_id: String,
        /// Login email; must be unused.
        email: String,
        /// Display name (may be empty).
        name: String,
        /// Role granted on the workspace.
        role_name: String,
    },
    /// Removes a user and their group memberships.
    RemoveUser {
        /// The user to remove.
        user_id: String,
    },
    /// Grants a role on the whole workspace.
    GrantRole {
        /// The user.
        user_id: String,
        /// Name of the role to grant.
        role_name: String,
    },
    /// Revokes every permission of a role from a user, whatever its resources.
    RevokeRole {
        /// The user.
        user_id: String,
        /// Name of the role to revoke.
        role_name: String,
    },
    /// Adds a user to a group.
    AddGroupMember {
        /// The group.
        group_id: String,
        /// The user to add.
        user_id: String,
    },
    /// Removes a user from a group.
    RemoveGroupMember {
        /// The group.
        group_id: String,
        /// The member to remove.
        user_id: String,
    },
    /// Replaces a source's first write key with a new random one.
    RotateWriteKey {
        /// The source.
        source_id: String,
    },
    /// Enables or disables a source.
    SetSourceEnabled {
        /// The source.
        source_id: String,
        /// New state.
        enabled: bool,
    },
    /// Sets (adds or replaces) a label on a source, defining it in the workspace if new.
    SetSourceLabel {
        /// The source.
        source_id: String,
        /// Label key.
        key: String,
        /// Label value.
        value: String,
    },
    /// Removes a label from a source.
    RemoveSourceLabel {
        /// The source.
        source_id: String,
        /// Key of the label to remove.
        key: String,
    },
    /// Invites an email to the workspace, optionally through a group.
    Invite {
        /// Email to invite; must not belong to a user.
        email: String,
        /// Group the invite comes from.
        #[serde(default)]
        group_id: Option<String>,
    },
    /// Withdraws a pending invite, from the workspace and every group.
    RevokeInvite {
        /// The invited email.
        email: String,
    },
    /// Connects a new destination to a source, with catalog-typical settings (an API key…).
    AddDestination {
        /// The source feeding it.
        source_id: String,
        /// Instance name.
        name: String,
    },
    /// Deletes a destination.
    RemoveDestination {
        /// The destination.
        destination_id: String,
    },
    /// Sets (adds or replaces) one top-level setting of a destination.
    SetDestinationSetting {
        /// The destination.
        destination_id: String,
        /// Setting key, e.g. `apiKey` or `endpoint`.
        key: String,
        /// New value.
        value: serde_json::Value,
    },
    /// Enables or disables a destination.
    SetDestinationEnabled {
        /// The destination.
        destination_id: String,
        /// New state.
        enabled: bool,
    },
    /// Replaces a warehouse's password (or its service-account credentials) with a new one.
    RotateWarehouseCredential {
        /// The warehouse.
        warehouse_id: String,
    },
    /// Points a warehouse at another host.
    SetWarehouseHost {
        /// The warehouse.
        warehouse_id: String,
        /// New host name.
        host: String,
    },
    /// Enables or disables a warehouse.
    SetWarehouseEnabled {
        /// The warehouse.
        warehouse_id: String,
        /// New state.
        enabled: bool,
    },
    /// Creates and deploys a new function.
    AddFunction {
        /// Display name.
        display_name: String,
        /// `DESTINATION`, `SOURCE`, `INSERT_DESTINATION`, `INSERT_SOURCE` or
        /// `INSERT_TRANSFORMATION`.
        resource_type: String,
    },
    /// Deploys new code for a function (`code` absent: the next version of its template).
    DeployFunction {
        /// The function.
        function_id: String,
        /// The new code.
        #[serde(default)]
        code: Option<String>,
    },
    /// Deletes a function.
    RemoveFunction {
        /// The function.
        function_id: String,
    },
    /// Connects a tracking plan to a source.
    ConnectTrackingPlan {
        /// The tracking plan.
        tracking_plan_id: String,
        /// The source.
        source_id: String,
    },
    /// Disconnects a tracking plan from a source.
    DisconnectTrackingPlan {
        /// The tracking plan.
        tracking_plan_id: String,
        /// The source.
        source_id: String,
    },
    /// Modifies `percent` % of users, groups and sources at once (role changes, member changes,
    /// label changes, key rotations, enable toggles).
    Churn {
        /// Share to modify, in (0, 100].
        percent: f64,
    },
    /// Creates a Public API token. Only the audit trail shows it (`Access Token Created`, the
    /// token named by id, never by value): tokens are not a resource segwatch lists.
    CreateToken {
        /// The token's display name.
        name: String,
    },
    /// Changes the workspace's SSO (SAML) settings; only the audit trail shows it.
    UpdateSsoSettings,
}

fn not_found(kind: &'static str, id: &str) -> SimError {
    SimError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn valid_email(email: &str) -> Result<String, SimError> {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email.to_owned()),
        _ => Err(SimError::Invalid(format!("`{email}` is not an email"))),
    }
}

/// Applies `m` to `st`, drawing any new ids or keys from `rng`. Returns a one-line description.
/// Every resource it touched is pushed to `trail`, as Segment's audit trail would record it.
pub(crate) fn apply(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    m: Mutation,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    let description = match m {
        Mutation::AddUser {
            email,
            name,
            role_name,
        } => add_user(st, rng, None, &email, name, &role_name, trail)?,
        Mutation::AddExistingUser {
            user_id,
            email,
            name,
            role_name,
        } => add_user(st, rng, Some(user_id), &email, name, &role_name, trail)?,
        Mutation::RemoveUser { user_id } => {
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = st.users.remove(pos);
            st.reindex_users();
            trail.push(Touched::new("User Removed", "user", &user.id, &user.email));
            let mut groups = 0;
            for g in &mut st.groups {
                let before = g.members.len();
                g.members.retain(|m| m != &user.id);
                if g.members.len() != before {
                    groups += 1;
                    trail.push(group_touched("Group Memberships Deleted", g));
                }
            }
            match groups {
                0 => format!("removed user {}", user.email),
                n => format!("removed user {} (and from {n} group(s))", user.email),
            }
        }
        Mutation::GrantRole { user_id, role_name } => {
            let role = st
                .role_by_name(&role_name)
                .ok_or_else(|| not_found("role", &role_name))?
                .clone();
            let ws = st.workspace.id.clone();
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = &mut st.users[pos];
            if user
                .permissions
                .iter()
                .any(|p| p.role_name == role.name && p.is_workspace_wide(&ws))
            {
                return Err(SimError::Conflict(format!(
                    "{} already holds {} on the workspace",
                    user.email, role.name
                )));
            }
            user.permissions
                .push(generate::workspace_permission(&role, &ws));
            trail.push(user_policy(user));
            format!("granted {} to {}", role.name, user.email)
        }
        Mutation::RevokeRole { user_id, role_name } => {
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = &mut st.users[pos];
            let before = user.permissions.len();
            user.permissions.retain(|p| p.role_name != role_name);
            if user.permissions.len() == before {
                return Err(SimError::Conflict(format!(
                    "{} does not hold {role_name}",
                    user.email
                )));
            }
            trail.push(user_policy(user));
            format!("revoked {role_name} from {}", user.email)
        }
        Mutation::AddGroupMember { group_id, user_id } => {
            let gpos = st
                .group_position(&group_id)
                .ok_or_else(|| not_found("group", &group_id))?;
            let email = st
                .user(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?
                .email
                .clone();
            let group = &mut st.groups[gpos];
            if group.members.contains(&user_id) {
                return Err(SimError::Conflict(format!(
                    "{email} is already a member of group \"{}\"",
                    group.name
                )));
            }
            group.members.push(user_id);
            trail.push(group_touched("Group Memberships Created", group));
            format!(
                "added {email} to group \"{}\" ({} members)",
                group.name,
                group.member_count()
            )
        }
        Mutation::RemoveGroupMember { group_id, user_id } => {
            let gpos = st
                .group_position(&group_id)
                .ok_or_else(|| not_found("group", &group_id))?;
            let email = st
                .user(&user_id)
                .map_or_else(|| user_id.clone(), |u| u.email.clone());
            let group = &mut st.groups[gpos];
            let Some(i) = group.members.iter().position(|m| m == &user_id) else {
                return Err(SimError::Conflict(format!(
                    "{email} is not a member of group \"{}\"",
                    group.name
                )));
            };
            group.members.remove(i);
            trail.push(group_touched("Group Memberships Deleted", group));
            format!(
                "removed {email} from group \"{}\" ({} members)",
                group.name,
                group.member_count()
            )
        }
        Mutation::RotateWriteKey { source_id } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            trail.push(source_touched(st, pos));
            rotate_key(st, rng, pos)
        }
        Mutation::SetSourceEnabled { source_id, enabled } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            if st.sources[pos].enabled != enabled {
                trail.push(source_touched(st, pos));
            }
            let source = &mut st.sources[pos];
            let was = std::mem::replace(&mut source.enabled, enabled);
            match (was, enabled) {
                (false, true) => format!("enabled source \"{}\"", source.name),
                (true, false) => format!("disabled source \"{}\"", source.name),
                _ => format!(
                    "source \"{}\" already {}",
                    source.name,
                    if enabled { "enabled" } else { "disabled" }
                ),
            }
        }
        Mutation::SetSourceLabel {
            source_id,
            key,
            value,
        } => {
            if key.is_empty() || value.is_empty() {
                return Err(SimError::Invalid(
                    "label key and value must not be empty".into(),
                ));
            }
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            if st.sources[pos].label(&key) != Some(value.as_str()) {
                trail.push(source_touched(st, pos));
            }
            set_label(st, pos, &key, &value)
        }
        Mutation::RemoveSourceLabel { source_id, key } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            let source = &mut st.sources[pos];
            let Some(i) = source.labels.iter().position(|l| l.key == key) else {
                return Err(SimError::Conflict(format!(
                    "source \"{}\" has no label `{key}`",
                    source.name
                )));
            };
            let label = source.labels.remove(i);
            trail.push(Touched::new(
                "Source Modified",
                "source",
                &source.id,
                &source.name,
            ));
            format!(
                "removed label {}={} from source \"{}\"",
                label.key, label.value, source.name
            )
        }
        Mutation::Invite { email, group_id } => {
            let email = valid_email(&email)?;
            if st.user_by_email(&email).is_some() {
                return Err(SimError::Conflict(format!("{email} is already a user")));
            }
            let pending = st.invites.iter().any(|e| e.eq_ignore_ascii_case(&email));
            match group_id {
                Some(group_id) => {
                    let gpos = st
                        .group_position(&group_id)
                        .ok_or_else(|| not_found("group", &group_id))?;
                    let group = &mut st.groups[gpos];
                    if group.invites.iter().any(|e| e.eq_ignore_ascii_case(&email)) {
                        return Err(SimError::Conflict(format!(
                            "{email} is already invited to group \"{}\"",
                            group.name
                        )));
                    }
                    group.invites.push(email.clone());
                    trail.push(group_touched("User Group Updated", group));
                    let description = format!("invited {email} to group \"{}\"", group.name);
                    if !pending {
                        trail.push(Touched::new("User Invited", "invite", &email, &email));
                        st.invites.push(email);
                    }
                    description
                }
                None => {
                    if pending {
                        return Err(SimError::Conflict(format!("{email} is already invited")));
                    }
                    let description = format!("invited {email} to the workspace");
                    trail.push(Touched::new("User Invited", "invite", &email, &email));
                    st.invites.push(email);
                    description
                }
            }
        }
        Mutation::RevokeInvite { email } => {
            let before = st.invites.len();
            st.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
            if st.invites.len() == before {
                return Err(not_found("invite", &email));
            }
            trail.push(Touched::new("Invite Deleted", "invite", &email, &email));
            for g in &mut st.groups {
                let before = g.invites.len();
                g.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
                if g.invites.len() != before {
                    trail.push(group_touched("User Group Updated", g));
                }
            }
            format!("revoked invite for {email}")
        }
        Mutation::Churn { percent } => churn(st, rng, percent, trail)?,
        Mutation::CreateToken { name } => {
            if name.trim().is_empty() {
                return Err(SimError::Invalid("a token needs a name".into()));
            }
            let id = format!("tok_{}", generate::random_id(rng));
            trail.push(Touched::new(
                "Access Token Created",
                "access_token",
                id,
                &name,
            ));
            format!("created API token \"{name}\"")
        }
        Mutation::UpdateSsoSettings => {
            trail.push(Touched::new(
                "SSO Settings Updated",
                "workspace",
                &st.workspace.id,
                &st.workspace.name,
            ));
            "updated the workspace's SSO settings".to_owned()
        }
        other => {
            // Segment records data-flow changes in its audit trail like the others.
            let target = flow_target(&other);
            let description = data_flow(st, rng, other)?;
            if let Some(touched) = target.and_then(|t| t.resolve(st)) {
                trail.push(touched);
            }
            description
        }
    };
    debug_assert_eq!(st.check_invariants(), Ok(()));
    Ok(description)
}

/// `User Policy Updated` on a user.
fn user_policy(user: &super::state::User) -> Touched {
    Touched::new("User Policy Updated", "user", &user.id, &user.email)
}

fn group_touched(event_type: &'static str, group: &super::state::Group) -> Touched {
    Touched::new(event_type, "user_group", &group.id, &group.name)
}

fn source_touched(st: &WorkspaceState, pos: usize) -> Touched {
    let source = &st.sources[pos];
    Touched::new("Source Modified", "source", &source.id, &source.name)
}

/// The mutations of destinations, warehouses, functions and tracking plans.
fn data_flow(st: &mut WorkspaceState, rng: &mut Rng, m: Mutation) -> Result<String, SimError> {
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

fn add_user(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    id: Option<String>,
    email: &str,
    name: String,
    role_name: &str,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    let email = valid_email(email)?;
    let role = st
        .role_by_name(role_name)
        .ok_or_else(|| not_found("role", role_name))?
        .clone();
    if st.user_by_email(&email).is_some() {
        return Err(SimError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    let id = match id {
        Some(id) if st.user_position(&id).is_some() => {
            return Err(SimError::Conflict(format!("user {id} already exists")));
        }
        Some(id) if id.is_empty() => {
            return Err(SimError::Invalid("a user id must not be empty".into()));
        }
        Some(id) => id,
        None => loop {
            let id = generate::random_id(rng);
            if st.user_position(&id).is_none() {
                break id;
            }
        },
    };
    let display = if name.is_empty() {
        email.clone()
    } else {
        format!("{email} ({name})")
    };
    st.users.push(super::state::User {
        id: id.clone(),
        name,
        email: email.clone(),
        permissions: vec![generate::workspace_permission(&role, &st.workspace.id)],
    });
    st.index_pushed_user();
    trail.push(Touched::new("User Added", "user", &id, &email));
    // Accepting an invite: it stops being pending and the user joins the inviting groups.
    let invited = st.invites.len();
    st.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
    if st.invites.len() != invited {
        trail.push(Touched::new("Invite Accepted", "invite", &email, &email));
    }
    let mut joined = Vec::new();
    for g in &mut st.groups {
        let before = g.invites.len();
        g.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
        if g.invites.len() != before {
            g.members.push(id.clone());
            joined.push(format!("\"{}\"", g.name));
            trail.push(group_touched("Group Memberships Created", g));
        }
    }
    let mut description = format!("added user {display} with {}", role.name);
    if !joined.is_empty() {
        description.push_str(&format!(", joining group(s) {}", joined.join(", ")));
    }
    Ok(description)
}

fn rotate_key(st: &mut WorkspaceState, rng: &mut Rng, pos: usize) -> String {
    let source = &mut st.sources[pos];
    let key = generate::random_write_key(rng);
    match source.write_keys.first_mut() {
        Some(first) => *first = key,
        None => source.write_keys.push(key),
    }
    format!("rotated write key of source \"{}\"", source.name)
}

fn set_label(st: &mut WorkspaceState, pos: usize, key: &str, value: &str) -> String {
    if !st.labels.iter().any(|l| l.key == key && l.value == value) {
        st.labels.push(Label {
            key: key.to_owned(),
            value: value.to_owned(),
            description: Some(generate::label_description(key, value)),
        });
    }
    let source = &mut st.sources[pos];
    let previous = match source.labels.iter_mut().find(|l| l.key == key) {
        Some(label) => Some(std::mem::replace(&mut label.value, value.to_owned())),
        None => {
            source.labels.push(Label::new(key, value));
            None
        }
    };
    match previous {
        Some(p) if p == value => format!(
            "label {key}={value} already set on source \"{}\"",
            source.name
        ),
        Some(p) => format!(
            "set label {key}={value} on source \"{}\" (was {p})",
            source.name
        ),
        None => format!("set label {key}={value} on source \"{}\"", source.name),
    }
}

fn churn(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    percent: f64,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    if !percent.is_finite() || percent <= 0.0 || percent > 100.0 {
        return Err(SimError::Invalid(format!(
            "churn percent must be in (0, 100], got {percent}"
        )));
    }
    let share = |n: usize| ((n as f64) * percent / 100.0).ceil() as usize;
    let ws = st.workspace.id.clone();

    let mut users = distinct_indices(rng, st.users.len(), share(st.users.len()));
    users.sort_unstable();
    for &i in &users {
        let user = &mut st.users[i];
        let held: Vec<usize> = user
            .permissions
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                EXTRA_WORKSPACE_ROLES.contains(&p.role_name.as_str()) && p.is_workspace_wide(&ws)
            })
            .map(|(i, _)| i)
            .collect();
        let grantable: Vec<&str> = EXTRA_WORKSPACE_ROLES
            .iter()
            .copied()
            .filter(|r| !user.permissions.iter().any(|p| p.role_name == *r))
            .collect();
        if grantable.is_empty() || (!held.is_empty() && rng.bool()) {
            user.permissions.remove(*pick(rng, &held));
        } else {
            let role_name = *pick(rng, &grantable);
            let role = st
                .roles
                .iter()
                .find(|r| r.name == role_name)
                .expect("extra roles are generated");
            let permission = generate::workspace_permission(role, &ws);
            st.users[i].permissions.push(permission);
        }
        trail.push(user_policy(&st.users[i]));
    }

    let mut groups = distinct_indices(rng, st.groups.len(), share(st.groups.len()));
    groups.sort_unstable();
    let mut changed_groups = 0;
    for &i in &groups {
        let remove = !st.groups[i].members.is_empty() && rng.bool();
        if !remove && let Some(user_id) = random_non_member(st, rng, i) {
            st.groups[i].members.push(user_id);
            changed_groups += 1;
            trail.push(group_touched("Group Memberships Created", &st.groups[i]));
        } else if !st.groups[i].members.is_empty() {
            let members = &mut st.groups[i].members;
            members.remove(rng.usize(..members.len()));
            changed_groups += 1;
            trail.push(group_touched("Group Memberships Deleted", &st.groups[i]));
        }
    }

    let mut sources = distinct_indices(rng, st.sources.len(), share(st.sources.len()));
    sources.sort_unstable();
    for &i in &sources {
        trail.push(source_touched(st, i));
        match rng.u32(..10) {
            0..=3 => {
                rotate_key(st, rng, i);
            }
            4..=7 => {
                let (key, value) = different_label(st, rng, i);
                set_label(st, i, key, value);
            }
            _ => st.sources[i].enabled = !st.sources[i].enabled,
        }
    }
    Ok(format!(
        "churned {percent}%: changed {} users, {changed_groups} groups, {} sources",
        users.len(),
        sources.len()
    ))
}

/// An environment or team label whose value differs from the source's current one.
fn different_label(st: &WorkspaceState, rng: &mut Rng, pos: usize) -> (&'static str, &'static str) {
    let (key, values) = if rng.u32(..3) == 0 {
        ("team", TEAMS)
    } else {
        ("environment", ENVIRONMENTS)
    };
    let current = st.sources[pos].label(key);
    loop {
        let value = *pick(rng, values);
        if Some(value) != current {
            return (key, value);
        }
    }
}

fn random_non_member(st: &WorkspaceState, rng: &mut Rng, group: usize) -> Option<String> {
    if st.users.is_empty() {
        return None;
    }
    let members = &st.groups[group].members;
    // Random probing finds a non-member fast unless the group holds nearly everyone.
    for _ in 0..32 {
        let user = &st.users[rng.usize(..st.users.len())];
        if !members.contains(&user.id) {
            return Some(user.id.clone());
        }
    }
    st.users
        .iter()
        .find(|u| !members.contains(&u.id))
        .map(|u| u.id.clone())
}

/// An email not used by any user or invite, with a plausible name.
fn fresh_person(st: &WorkspaceState, rng: &mut Rng, external_percent: u32) -> (String, String) {
    let (name, local) = generate::random_person(rng);
    let domain = generate::random_domain(rng, external_percent);
    let taken = |candidate: &str| {
        st.users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case(candidate))
            || st.invites.iter().any(|e| e.eq_ignore_ascii_case(candidate))
    };
    let mut candidate = format!("{local}@{domain}");
    let mut n = 1;
    while taken(&candidate) {
        n += 1;
        candidate = format!("{local}{n}@{domain}");
    }
    (name, candidate)
}

fn owner_count(st: &WorkspaceState) -> usize {
    st.users_with_workspace_role(WORKSPACE_OWNER).count()
}

/// Picks a plausible mutation with valid targets, drawing from `rng`.
///
/// Weighted towards changes that make good alerts: owner grants, source label removals and
/// write key rotations.
pub(crate) fn random(st: &WorkspaceState, rng: &mut Rng) -> Mutation {
    const WEIGHTS: &[(Pick, u32)] = &[
        (Pick::GrantOwner, 18),
        (Pick::RemoveSourceLabel, 15),
        (Pick::RotateWriteKey, 15),
        (Pick::AddUser, 8),
        (Pick::RemoveUser, 5),
        (Pick::GrantOther, 6),
        (Pick::RevokeRole, 6),
        (Pick::AddGroupMember, 6),
        (Pick::RemoveGroupMember, 5),
        (Pick::ToggleSource, 5),
        (Pick::SetSourceLabel, 6),
        (Pick::Invite, 5),
        (Pick::RevokeInvite, 3),
        (Pick::CreateToken, 3),
        (Pick::UpdateSso, 2),
        (Pick::AddDestination, 4),
        (Pick::RemoveDestination, 2),
        (Pick::ChangeDestinationSetting, 4),
        (Pick::ToggleDestination, 2),
        (Pick::RotateWarehouseCredential, 3),
        (Pick::ChangeWarehouseHost, 2),
        (Pick::DeployFunction, 3),
        (Pick::ConnectTrackingPlan, 2),
        (Pick::DisconnectTrackingPlan, 2),
    ];
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    for _ in 0..32 {
        let mut roll = rng.u32(..total);
        let choice = WEIGHTS
            .iter()
            .find(|(_, w)| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .map(|(p, _)| *p)
            .unwrap_or(Pick::Invite);
        if let Some(m) = candidate(st, rng, choice) {
            return m;
        }
    }
    // Always possible: nothing else had a valid target (e.g. an empty workspace).
    let (_, email) = fresh_person(st, rng, 30);
    Mutation::Invite {
        email,
        group_id: None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Pick {
    GrantOwner,
    RemoveSourceLabel,
    RotateWriteKey,
    AddUser,
    RemoveUser,
    GrantOther,
    RevokeRole,
    AddGroupMember,
    RemoveGroupMember,
    ToggleSource,
    SetSourceLabel,
    Invite,
    RevokeInvite,
    CreateToken,
    UpdateSso,
    AddDestination,
    RemoveDestination,
    ChangeDestinationSetting,
    ToggleDestination,
    RotateWarehouseCredential,
    ChangeWarehouseHost,
    DeployFunction,
    ConnectTrackingPlan,
    DisconnectTrackingPlan,
}

/// Tries a few random draws for an item satisfying `ok`.
fn find<'a, T>(rng: &mut Rng, items: &'a [T], ok: impl Fn(&T) -> bool) -> Option<&'a T> {
    if items.is_empty() {
        return None;
    }
    (0..16).map(|_| pick(rng, items)).find(|item| ok(item))
}

fn candidate(st: &WorkspaceState, rng: &mut Rng, choice: Pick) -> Option<Mutation> {
    let ws = st.workspace.id.as_str();
    let holds = |u: &super::state::User, role: &str| {
        u.permissions
            .iter()
            .any(|p| p.role_name == role && p.is_workspace_wide(ws))
    };
    Some(match choice {
        Pick::GrantOwner => {
            let user = find(rng, &st.users, |u| !holds(u, WORKSPACE_OWNER))?;
            Mutation::GrantRole {
                user_id: user.id.clone(),
                role_name: WORKSPACE_OWNER.to_owned(),
            }
        }
        Pick::RemoveSourceLabel => {
            let source = find(rng, &st.sources, |s| !s.labels.is_empty())?;
            let key = match source.label("environment") {
                Some(_) if rng.u32(..4) != 0 => "environment".to_owned(),
                _ => pick(rng, &source.labels).key.clone(),
            };
            Mutation::RemoveSourceLabel {
                source_id: source.id.clone(),
                key,
            }
        }
        Pick::RotateWriteKey => Mutation::RotateWriteKey {
            source_id: find(rng, &st.sources, |_| true)?.id.clone(),
        },
        Pick::AddUser => {
            let (name, email) = fresh_person(st, rng, 15);
            let role_name = match rng.u32(..10) {
                0 => WORKSPACE_OWNER,
                1 => SOURCE_ADMIN,
                _ => MINIMAL_ACCESS,
            };
            Mutation::AddUser {
                email,
                name,
                role_name: role_name.to_owned(),
            }
        }
        Pick::RemoveUser => {
            let last_owner = owner_count(st) <= 1;
            let user = find(rng, &st.users, |u| {
                !(last_owner && holds(u, WORKSPACE_OWNER))
            })?;
            Mutation::RemoveUser {
                user_id: user.id.clone(),
            }
        }
        Pick::GrantOther => {
            let role_name = *pick(rng, EXTRA_WORKSPACE_ROLES);
            let user = find(rng, &st.users, |u| !holds(u, role_name))?;
            Mutation::GrantRole {
                user_id: user.id.clone(),
                role_name: role_name.to_owned(),
            }
        }
        Pick::RevokeRole => {
            let last_owner = owner_count(st) <= 1;
            let user = find(rng, &st.users, |u| !u.permissions.is_empty())?;
            let role_name = pick(rng, &user.permissions).role_name.clone();
            if last_owner && role_name == WORKSPACE_OWNER {
                return None;
            }
            Mutation::RevokeRole {
                user_id: user.id.clone(),
                role_name,
            }
        }
        Pick::AddGroupMember => {
            let group = find(rng, &st.groups, |_| true)?;
            let i = st.group_position(&group.id)?;
            Mutation::AddGroupMember {
                group_id: group.id.clone(),
                user_id: random_non_member(st, rng, i)?,
            }
        }
        Pick::RemoveGroupMember => {
            let group = find(rng, &st.groups, |g| !g.members.is_empty())?;
            Mutation::RemoveGroupMember {
                group_id: group.id.clone(),
                user_id: pick(rng, &group.members).clone(),
            }
        }
        Pick::ToggleSource => {
            let source = find(rng, &st.sources, |_| true)?;
            Mutation::SetSourceEnabled {
                source_id: source.id.clone(),
                enabled: !source.enabled,
            }
        }
        Pick::SetSourceLabel => {
            let pos = rng.usize(..st.sources.len().max(1));
            let source = st.sources.get(pos)?;
            let (key, value) = different_label(st, rng, pos);
            Mutation::SetSourceLabel {
                source_id: source.id.clone(),
                key: key.to_owned(),
                value: value.to_owned(),
            }
        }
        Pick::Invite => {
            let (_, email) = fresh_person(st, rng, 30);
            let group_id = if !st.groups.is_empty() && rng.u32(..10) < 4 {
                Some(pick(rng, &st.groups).id.clone())
            } else {
                None
            };
            Mutation::Invite { email, group_id }
        }
        Pick::RevokeInvite => Mutation::RevokeInvite {
            email: find(rng, &st.invites, |_| true)?.clone(),
        },
        Pick::CreateToken => Mutation::CreateToken {
            name: format!("{} automation", pick(rng, TEAMS)),
        },
        Pick::UpdateSso => Mutation::UpdateSsoSettings,
        Pick::AddDestination => {
            let source = find(rng, &st.sources, |_| true)?;
            let n = st.destinations.len() + 1;
            Mutation::AddDestination {
                source_id: source.id.clone(),
                name: format!("Export {n} for {}", source.name),
            }
        }
        Pick::RemoveDestination => Mutation::RemoveDestination {
            destination_id: find(rng, &st.destinations, |_| true)?.id.clone(),
        },
        Pick::ChangeDestinationSetting => {
            let d = find(rng, &st.destinations, |d| !d.settings.is_empty())?;
            let keys: Vec<&String> = d.settings.keys().collect();
            let key = (*pick(rng, &keys)).clone();
            let value = match d.settings.get(&key) {
                Some(serde_json::Value::Bool(b)) => serde_json::Value::Bool(!b),
                _ => serde_json::Value::String(generate::random_secret(rng, 32)),
            };
            Mutation::SetDestinationSetting {
                destination_id: d.id.clone(),
                key,
                value,
            }
        }
        Pick::ToggleDestination => {
            let d = find(rng, &st.destinations, |_| true)?;
            Mutation::SetDestinationEnabled {
                destination_id: d.id.clone(),
                enabled: !d.enabled,
            }
        }
        Pick::RotateWarehouseCredential => Mutation::RotateWarehouseCredential {
            warehouse_id: find(rng, &st.warehouses, |_| true)?.id.clone(),
        },
        Pick::ChangeWarehouseHost => {
            let w = find(rng, &st.warehouses, |w| w.settings.contains_key("host"))?;
            Mutation::SetWarehouseHost {
                warehouse_id: w.id.clone(),
                host: format!("db-{}.external-host.net", rng.u32(1000..10_000)),
            }
        }
        Pick::DeployFunction => Mutation::DeployFunction {
            function_id: find(rng, &st.functions, |_| true)?.id.clone(),
            code: None,
        },
        Pick::ConnectTrackingPlan => {
            let tp = find(rng, &st.tracking_plans, |t| {
                t.source_ids.len() < st.sources.len()
            })?;
            let source = find(rng, &st.sources, |s| !tp.source_ids.contains(&s.id))?;
            Mutation::ConnectTrackingPlan {
                tracking_plan_id: tp.id.clone(),
                source_id: source.id.clone(),
            }
        }
        Pick::DisconnectTrackingPlan => {
            let tp = find(rng, &st.tracking_plans, |t| !t.source_ids.is_empty())?;
            Mutation::DisconnectTrackingPlan {
                tracking_plan_id: tp.id.clone(),
                source_id: pick(rng, &tp.source_ids).clone(),
            }
        }
    })
}

/// Reorders every list and inner array without changing content.
///
/// Write keys keep their order (the first key is the primary one). Top-level lists of two or
/// more items always end up in a different order, so tests can rely on a visible reordering.
pub(crate) fn shuffle(st: &mut WorkspaceState, rng: &mut Rng) {
    let shuffle_permissions = |rng: &mut Rng, permissions: &mut Vec<super::state::Permission>| {
        rng.shuffle(permissions);
        for p in permissions {
            rng.shuffle(&mut p.resources);
            for r in &mut p.resources {
                if let Some(labels) = &mut r.labels {
                    rng.shuffle(labels);
                }
            }
            if let Some(labels) = &mut p.labels {
                rng.shuffle(labels);
            }
        }
    };
    reorder(rng, &mut st.roles);
    reorder(rng, &mut st.users);
    for u in &mut st.users {
        shuffle_permissions(rng, &mut u.permissions);
    }
    reorder(rng, &mut st.groups);
    for g in &mut st.groups {
        shuffle_permissions(rng, &mut g.permissions);
        rng.shuffle(&mut g.members);
        rng.shuffle(&mut g.invites);
    }
    reorder(rng, &mut st.invites);
    reorder(rng, &mut st.sources);
    for s in &mut st.sources {
        rng.shuffle(&mut s.labels);
        rng.shuffle(&mut s.metadata.categories);
    }
    reorder(rng, &mut st.labels);
    reorder(rng, &mut st.destinations);
    reorder(rng, &mut st.warehouses);
    for w in &mut st.warehouses {
        rng.shuffle(&mut w.connected_source_ids);
    }
    reorder(rng, &mut st.functions);
    reorder(rng, &mut st.tracking_plans);
    for t in &mut st.tracking_plans {
        rng.shuffle(&mut t.source_ids);
    }
    st.reindex();
}

/// Shuffles `items` into an order different from the current one (when it has 2+ items).
fn reorder<T>(rng: &mut Rng, items: &mut Vec<T>) {
    let n = items.len();
    if n < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    if order.iter().enumerate().all(|(i, &j)| i == j) {
        order.rotate_left(1);
    }
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .into_iter()
            .map(|i| slots[i].take().expect("a permutation takes each slot once")),
    );
}

/// Which resource a data-flow mutation touches, as the audit trail names it; resolved after the
/// mutation ran (an added resource's id only exists then).
struct FlowTarget {
    event_type: &'static str,
    resource_type: &'static str,
    /// `None`: the resource the mutation adds (the last of its list).
    id: Option<String>,
}

impl FlowTarget {
    fn resolve(self, st: &WorkspaceState) -> Option<Touched> {
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

fn flow_target(m: &Mutation) -> Option<FlowTarget> {
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
