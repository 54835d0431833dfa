//! The simulated workspace's typed state.
//!
//! Field names and serde renames follow Segment's `*V1` schemas, so most items serialise
//! straight into API responses without an intermediate `serde_json::Value`. Lists are `Vec`s
//! whose order is the order the API pages through; the id indexes are only for lookups and are
//! never iterated, so output stays deterministic.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The workspace the token belongs to (`WorkspaceV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Workspace id.
    pub id: String,
    /// URL slug, e.g. `acme-analytics`.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// A role definition (`RoleV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role id.
    pub id: String,
    /// Role name, e.g. `Workspace Owner`.
    pub name: String,
    /// One-line description.
    pub description: String,
}

/// A label, either a workspace definition (`LabelV1`) or one applied to a source or permission.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label {
    /// Label key, e.g. `environment`.
    pub key: String,
    /// Label value, e.g. `prod`.
    pub value: String,
    /// What the label means; only workspace definitions carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Label {
    /// A label without description, as applied to sources and permissions.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            key: key.into(),
            value: value.into(),
            description: None,
        }
    }
}

/// The type of resource a permission applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ResourceType {
    /// A function.
    Function,
    /// A source.
    Source,
    /// An Engage space.
    Space,
    /// A warehouse.
    Warehouse,
    /// The whole workspace.
    Workspace,
}

/// One resource a permission extends a role to (`PermissionResourceV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionResource {
    /// Id of the resource (workspace id or source id).
    pub id: String,
    /// Resource type.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    /// Label restriction; Segment allows it only on workspace resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

/// A role granted on a set of resources (`PermissionV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Id of the granted role.
    pub role_id: String,
    /// Name of the granted role.
    pub role_name: String,
    /// Resources the role applies to.
    pub resources: Vec<PermissionResource>,
    /// Label restriction at permission level (sources selected by label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

impl Permission {
    /// True if this permission grants its role on the whole workspace without label restriction.
    pub fn is_workspace_wide(&self, workspace_id: &str) -> bool {
        self.labels.is_none()
            && self.resources.iter().any(|r| {
                r.kind == ResourceType::Workspace && r.id == workspace_id && r.labels.is_none()
            })
    }
}

/// A workspace user (`UserV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: String,
    /// Display name; may be empty, as Segment allows.
    pub name: String,
    /// Login email.
    pub email: String,
    /// Directly granted permissions.
    pub permissions: Vec<Permission>,
}

/// A user group with its members and pending invites.
///
/// The API form (`UserGroupV1`) derives `memberCount` from `members`, so the two can never
/// disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Group name.
    pub name: String,
    /// Permissions granted to every member.
    pub permissions: Vec<Permission>,
    /// Member user ids, in listing order.
    pub members: Vec<String>,
    /// Emails invited to the workspace through this group.
    pub invites: Vec<String>,
}

impl Group {
    /// Number of members, as reported in `memberCount`.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
}

/// Logo URLs of a catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logos {
    /// Default logo.
    pub default: String,
    /// Square mark.
    pub mark: String,
    /// Alternative logo.
    pub alt: String,
}

/// The catalog entry a source was created from (`SourceMetadataV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceMetadata {
    /// Catalog id.
    pub id: String,
    /// Catalog name, e.g. `iOS`.
    pub name: String,
    /// Catalog slug.
    pub slug: String,
    /// Catalog description.
    pub description: String,
    /// Logo URLs.
    pub logos: Logos,
    /// Catalog options (always empty here).
    pub options: Vec<serde_json::Value>,
    /// Catalog categories, e.g. `Mobile`.
    pub categories: Vec<String>,
    /// Whether this is a cloud event source.
    pub is_cloud_event_source: bool,
    /// Catalog status, e.g. `PUBLIC`.
    pub status: String,
}

/// A source (`SourceV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Source id.
    pub id: String,
    /// Source slug.
    pub slug: String,
    /// Source name.
    pub name: String,
    /// Owning workspace id.
    pub workspace_id: String,
    /// Whether the source accepts data.
    pub enabled: bool,
    /// Write keys (secrets); their order is meaningful and never shuffled.
    pub write_keys: Vec<String>,
    /// Catalog entry.
    pub metadata: SourceMetadata,
    /// Free-form settings.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Labels applied to the source.
    pub labels: Vec<Label>,
    /// Its schema settings (`GET /sources/{id}/settings`), not part of `SourceV1`.
    #[serde(skip)]
    pub schema_settings: crate::controls::SchemaSettings,
}

impl Source {
    /// The value of label `key`, if the source carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }
}

/// A destination instance fed by one source (`DestinationV1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Destination id.
    pub id: String,
    /// Instance name.
    pub name: String,
    /// Whether the destination receives data.
    pub enabled: bool,
    /// Catalog entry (`DestinationMetadataV1`), kept as JSON: it is large and only echoed.
    pub metadata: serde_json::Value,
    /// The source feeding it.
    pub source_id: String,
    /// Free-form settings, secrets (`apiKey`…) included.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Its destination filters (`GET /destination/{id}/filters`), not part of
    /// `DestinationV1`; removed with it.
    #[serde(skip)]
    pub filters: Vec<crate::controls::DestinationFilter>,
    /// Its Actions subscriptions (`GET /destinations/{id}/subscriptions`), not part of
    /// `DestinationV1`; removed with it.
    #[serde(skip)]
    pub subscriptions: Vec<crate::controls::Subscription>,
}

/// A warehouse (`WarehouseV1`) and the sources syncing to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    /// Warehouse id.
    pub id: String,
    /// Catalog entry (Snowflake, BigQuery, Redshift…).
    pub metadata: serde_json::Value,
    /// Owning workspace id.
    pub workspace_id: String,
    /// Whether the warehouse receives data.
    pub enabled: bool,
    /// Connection settings: `name`, `host`, `port`, `username`, `password`…
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Ids of the connected sources (served by `/warehouses/{id}/connected-sources`, not in
    /// the warehouse object).
    pub connected_source_ids: Vec<String>,
}

/// One setting a function declares (`FunctionSettingV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSetting {
    /// Setting name, e.g. `apiKey`.
    pub name: String,
    /// Label shown in the app.
    pub label: String,
    /// What the setting is for.
    pub description: String,
    /// `STRING`, `BOOLEAN`, `ARRAY` or `TEXT_MAP`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether an instance must set it.
    pub required: bool,
    /// Whether its value is a secret.
    pub sensitive: bool,
}

/// A function (`FunctionV1`); the list form (`ListFunctionItemV1`) omits the code and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// Function id.
    pub id: String,
    /// `DESTINATION`, `SOURCE`, `INSERT_DESTINATION`, `INSERT_SOURCE` or `INSERT_TRANSFORMATION`.
    pub resource_type: String,
    /// Creation time.
    pub created_at: String,
    /// Id of the user who created it.
    pub created_by: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Logo URL.
    pub logo_url: String,
    /// Catalog id of the function's integration.
    pub catalog_id: String,
    /// The JavaScript source.
    pub code: String,
    /// Last deployment time.
    pub deployed_at: Option<String>,
    /// Declared settings.
    pub settings: Vec<FunctionSetting>,
    /// Preview webhook URL (source functions).
    pub preview_webhook_url: String,
    /// Largest batch handed to the function.
    pub batch_max_count: u32,
    /// Whether the deployed version is the latest.
    pub is_latest_version: bool,
}

/// A tracking plan (`TrackingPlanV1`) and the sources it validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingPlan {
    /// Tracking plan id.
    pub id: String,
    /// Name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Description.
    pub description: String,
    /// `LIVE`, `PROPERTY_LIBRARY`, `RULE_LIBRARY` or `TEMPLATE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Ids of the connected sources (served by `/tracking-plans/{id}/sources`).
    pub source_ids: Vec<String>,
}

/// Where data leaves the workspace: destinations, warehouses, functions and tracking plans.
#[derive(Debug, Clone, Default)]
pub struct DataFlow {
    /// Destinations.
    pub destinations: Vec<Destination>,
    /// Warehouses.
    pub warehouses: Vec<Warehouse>,
    /// Functions of every type.
    pub functions: Vec<Function>,
    /// Tracking plans.
    pub tracking_plans: Vec<TrackingPlan>,
}

/// Everything the simulated workspace holds. Serialises as the `GET /_simulator/state` body.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceState {
    /// The workspace (`GET /`).
    pub workspace: Workspace,
    /// Role definitions (`GET /roles`).
    pub roles: Vec<Role>,
    /// Users (`GET /users`).
    pub users: Vec<User>,
    /// User groups (`GET /groups`).
    pub groups: Vec<Group>,
    /// Pending workspace invites (`GET /invites`), including every group invite.
    pub invites: Vec<String>,
    /// Sources (`GET /sources`).
    pub sources: Vec<Source>,
    /// Label definitions (`GET /labels`).
    pub labels: Vec<Label>,
    /// Destinations (`GET /destinations`).
    pub destinations: Vec<Destination>,
    /// Warehouses (`GET /warehouses`).
    pub warehouses: Vec<Warehouse>,
    /// Functions (`GET /functions?resourceType=…`).
    pub functions: Vec<Function>,
    /// Tracking plans (`GET /tracking-plans`).
    pub tracking_plans: Vec<TrackingPlan>,
    /// Transformations (`GET /transformations`).
    pub transformations: Vec<crate::controls::Transformation>,
    /// Reverse ETL models (`GET /reverse-etl-models`).
    pub reverse_etl_models: Vec<crate::controls::ReverseEtlModel>,
    #[serde(skip)]
    index: Index,
}

/// Id → position lookups, rebuilt whenever a list is reordered or shrinks.
#[derive(Debug, Clone, Default)]
struct Index {
    users: HashMap<String, usize>,
    groups: HashMap<String, usize>,
    sources: HashMap<String, usize>,
    destinations: HashMap<String, usize>,
    warehouses: HashMap<String, usize>,
    functions: HashMap<String, usize>,
    tracking_plans: HashMap<String, usize>,
}

impl WorkspaceState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        workspace: Workspace,
        roles: Vec<Role>,
        users: Vec<User>,
        groups: Vec<Group>,
        invites: Vec<String>,
        sources: Vec<Source>,
        labels: Vec<Label>,
        flow: DataFlow,
    ) -> Self {
        let mut state = WorkspaceState {
            workspace,
            roles,
            users,
            groups,
            invites,
            sources,
            labels,
            destinations: flow.destinations,
            warehouses: flow.warehouses,
            functions: flow.functions,
            tracking_plans: flow.tracking_plans,
            transformations: Vec::new(),
            reverse_etl_models: Vec::new(),
            index: Index::default(),
        };
        state.reindex();
        state
    }

    /// Rebuilds every id index; call after reordering or removing items.
    pub(crate) fn reindex(&mut self) {
        self.index.users = position_map(self.users.iter().map(|u| u.id.as_str()));
        self.index.groups = position_map(self.groups.iter().map(|g| g.id.as_str()));
        self.index.sources = position_map(self.sources.iter().map(|s| s.id.as_str()));
        self.reindex_flow();
    }

    /// Rebuilds the destination, warehouse, function and tracking plan indexes.
    pub(crate) fn reindex_flow(&mut self) {
        self.index.destinations = position_map(self.destinations.iter().map(|d| d.id.as_str()));
        self.index.warehouses = position_map(self.warehouses.iter().map(|w| w.id.as_str()));
        self.index.functions = position_map(self.functions.iter().map(|f| f.id.as_str()));
        self.index.tracking_plans = position_map(self.tracking_plans.iter().map(|t| t.id.as_str()));
    }

    /// Position of destination `id` in `destinations`.
    pub fn destination_position(&self, id: &str) -> Option<usize> {
        self.index.destinations.get(id).copied()
    }

    /// Position of warehouse `id` in `warehouses`.
    pub fn warehouse_position(&self, id: &str) -> Option<usize> {
        self.index.warehouses.get(id).copied()
    }

    /// Position of function `id` in `functions`.
    pub fn function_position(&self, id: &str) -> Option<usize> {
        self.index.functions.get(id).copied()
    }

    /// Position of tracking plan `id` in `tracking_plans`.
    pub fn tracking_plan_position(&self, id: &str) -> Option<usize> {
        self.index.tracking_plans.get(id).copied()
    }

    /// Rebuilds the user index after users were removed.
    pub(crate) fn reindex_users(&mut self) {
        self.index.users = position_map(self.users.iter().map(|u| u.id.as_str()));
    }

    /// Records a user just pushed at the end of `users`.
    pub(crate) fn index_pushed_user(&mut self) {
        if let Some(user) = self.users.last() {
            self.index
                .users
                .insert(user.id.clone(), self.users.len() - 1);
        }
    }

    /// Position of user `id` in `users`.
    pub fn user_position(&self, id: &str) -> Option<usize> {
        self.index.users.get(id).copied()
    }

    /// Position of group `id` in `groups`.
    pub fn group_position(&self, id: &str) -> Option<usize> {
        self.index.groups.get(id).copied()
    }

    /// Position of source `id` in `sources`.
    pub fn source_position(&self, id: &str) -> Option<usize> {
        self.index.sources.get(id).copied()
    }

    /// The user with id `id`.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.user_position(id).map(|i| &self.users[i])
    }

    /// The group with id `id`.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.group_position(id).map(|i| &self.groups[i])
    }

    /// The source with id `id`.
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.source_position(id).map(|i| &self.sources[i])
    }

    /// The role named `name` (exact match).
    pub fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The user whose email is `email`, compared case-insensitively as Segment does.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// Users holding `role_name` on the whole workspace.
    pub fn users_with_workspace_role<'a>(
        &'a self,
        role_name: &'a str,
    ) -> impl Iterator<Item = &'a User> + 'a {
        let ws = self.workspace.id.as_str();
        self.users.iter().filter(move |u| {
            u.permissions
                .iter()
                .any(|p| p.role_name == role_name && p.is_workspace_wide(ws))
        })
    }

    /// Checks the invariants mutations must keep; returns the first violation found.
    ///
    /// Used by tests and debug assertions: group members exist and are unique, group invites
    /// are pending workspace invites, ids are unique and indexes are current.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.index.users.len() != self.users.len() {
            return Err("duplicate user ids or stale user index".into());
        }
        if self.index.groups.len() != self.groups.len() {
            return Err("duplicate group ids or stale group index".into());
        }
        if self.index.sources.len() != self.sources.len() {
            return Err("duplicate source ids or stale source index".into());
        }
        for (i, u) in self.users.iter().enumerate() {
            if self.user_position(&u.id) != Some(i) {
                return Err(format!("stale index for user {}", u.id));
            }
        }
        for (i, s) in self.sources.iter().enumerate() {
            if self.source_position(&s.id) != Some(i) {
                return Err(format!("stale index for source {}", s.id));
            }
        }
        let positions = [
            (
                self.index.destinations.len(),
                self.destinations.len(),
                "destination",
            ),
            (
                self.index.warehouses.len(),
                self.warehouses.len(),
                "warehouse",
            ),
            (self.index.functions.len(), self.functions.len(), "function"),
            (
                self.index.tracking_plans.len(),
                self.tracking_plans.len(),
                "tracking plan",
            ),
        ];
        for (indexed, held, what) in positions {
            if indexed != held {
                return Err(format!("duplicate {what} ids or stale {what} index"));
            }
        }
        for (i, d) in self.destinations.iter().enumerate() {
            if self.destination_position(&d.id) != Some(i) {
                return Err(format!("stale index for destination {}", d.id));
            }
            if self.source(&d.source_id).is_none() {
                return Err(format!("destination {} has a dangling source", d.id));
            }
        }
        let connected = self
            .warehouses
            .iter()
            .map(|w| (&w.id, &w.connected_source_ids))
            .chain(self.tracking_plans.iter().map(|t| (&t.id, &t.source_ids)));
        for (id, sources) in connected {
            let mut seen = std::collections::HashSet::with_capacity(sources.len());
            for s in sources {
                if self.source(s).is_none() || !seen.insert(s.as_str()) {
                    return Err(format!("{id} has a dangling or repeated source {s}"));
                }
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            if self.group_position(&g.id) != Some(i) {
                return Err(format!("stale index for group {}", g.id));
            }
            let mut seen = std::collections::HashSet::with_capacity(g.members.len());
            for m in &g.members {
                if self.user(m).is_none() {
                    return Err(format!("group {} has dangling member {m}", g.id));
                }
                if !seen.insert(m.as_str()) {
                    return Err(format!("group {} lists member {m} twice", g.id));
                }
            }
            for e in &g.invites {
                if !self.invites.contains(e) {
                    return Err(format!(
                        "group {} invite {e} is not a workspace invite",
                        g.id
                    ));
                }
            }
        }
        Ok(())
    }
}

fn position_map<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    ids.enumerate().map(|(i, id)| (id.to_owned(), i)).collect()
}
