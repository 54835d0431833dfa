//! Security-relevant changes to the simulated workspace, applied atomically.
//!
//! Every mutation validates its targets before touching anything, so a failed mutation
//! leaves the state unchanged, and keeps the invariants checked by
//! [`WorkspaceState::check_invariants`](crate::WorkspaceState::check_invariants).

mod apply;
mod controls;
mod data_flow;
mod random;
mod shuffle;

use serde::{Deserialize, Serialize};

use super::SimError;

pub(crate) use apply::apply;
pub(crate) use random::random;
pub(crate) use shuffle::shuffle;

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
    /// Revokes every permission of a role from a group, whatever its resources: every member
    /// loses it.
    RevokeGroupRole {
        /// The group.
        group_id: String,
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
    /// Adds an enabled filter to a destination that drops `fields` from every event's
    /// properties (`DROP_PROPERTIES`).
    AddDestinationFilter {
        /// The destination.
        destination_id: String,
        /// The filter's title.
        title: String,
        /// Property names dropped.
        fields: Vec<String>,
    },
    /// Deletes a destination filter.
    RemoveDestinationFilter {
        /// The filter.
        filter_id: String,
    },
    /// Enables or disables a destination filter.
    SetDestinationFilterEnabled {
        /// The filter.
        filter_id: String,
        /// New state.
        enabled: bool,
    },
    /// Adds an Actions subscription to a destination that maps `field` (e.g. `email`) from the
    /// event's traits, with any extra mapping `settings` (which may carry a credential).
    AddSubscription {
        /// The destination.
        destination_id: String,
        /// The subscription's name.
        name: String,
        /// The destination field mapped from `$.traits.<field>`.
        field: String,
        /// Extra mapping entries.
        #[serde(default)]
        settings: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// Changes a source's schema settings: whether events (`track`) and traits (`identify`,
    /// `group`) its tracking plan does not list are let through. `None` leaves one as it is.
    SetSchemaSettings {
        /// The source.
        source_id: String,
        /// `track.allowUnplannedEvents` (and `allowUnplannedEventProperties`).
        #[serde(default)]
        allow_unplanned_events: Option<bool>,
        /// `identify.allowUnplannedTraits` and `group.allowUnplannedTraits`.
        #[serde(default)]
        allow_unplanned_traits: Option<bool>,
    },
    /// Changes a transformation; `None` leaves a field as it is. `stop_hashing` removes its
    /// hashing configuration.
    SetTransformation {
        /// The transformation.
        transformation_id: String,
        /// Drop matching events (`false`: let them through).
        #[serde(default)]
        drop: Option<bool>,
        /// Whether it is enabled.
        #[serde(default)]
        enabled: Option<bool>,
        /// Stop hashing any property.
        #[serde(default)]
        stop_hashing: bool,
    },
    /// Creates a reverse ETL model querying a source.
    AddReverseEtlModel {
        /// The (warehouse) source it queries.
        source_id: String,
        /// Its name.
        name: String,
        /// Its SQL query.
        query: String,
    },
    /// Maps an Actions subscription's destination field `key` from the event path `path`
    /// (`{"@path": path}`), or with `None` stops mapping it.
    SetSubscriptionMapping {
        /// The subscription.
        subscription_id: String,
        /// The destination field.
        key: String,
        /// The event path, e.g. `$.traits.email`.
        #[serde(default)]
        path: Option<String>,
    },
    /// Replaces a reverse ETL model's SQL query.
    SetReverseEtlQuery {
        /// The model.
        model_id: String,
        /// The new query.
        query: String,
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
