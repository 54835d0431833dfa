//! Collect: read every resource kind of one workspace through the [`SegmentClient`], redact
//! secrets and produce canonical [`Resource`]s.
//!
//! What a real workspace sends is not always what the API documents, so a collection keeps
//! watching whatever can be watched:
//! - a kind whose list endpoint answers 403 or 404 (a feature the plan or the token lacks) is
//!   *unavailable* ([`KindStatus::Unavailable`]) and the other kinds are still read; only a
//!   refused `GET /` (the token itself) and transient faults fail the collection;
//! - an item that cannot be identified is [`Quarantined`] and its kind is *incomplete*
//!   ([`KindStatus::Incomplete`]): its missing resources are not recorded as removed; when most
//!   of a listing is unreadable the API changed shape and the collection fails;
//! - [`confirm_missing`] re-checks resources that vanished from a list, since an item deleted
//!   while a list is read shifts Segment's offset cursors and hides one that still exists.
//!
//! Lists are converted page by page so 100,000 users never sit in memory as JSON trees.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::segment::{SegmentClient, SegmentError};
use segwatch_core::model::{
    KindStatus, KindStatuses, QUARANTINE_KEPT_PER_LISTING, Quarantined, Resource, ResourceKind,
};
use segwatch_core::redact::SecretPolicy;

/// Every resource of one workspace at one moment.
#[derive(Debug)]
pub struct Collection {
    /// Segment's id of the workspace the token belongs to.
    pub workspace_id: String,
    /// All resources, sorted by kind then id.
    pub resources: Vec<Resource>,
    /// The kinds not read in full (unavailable or incomplete), with why.
    pub kind_status: KindStatuses,
    /// Items that could not be understood, kept with the reason.
    pub quarantine: Vec<Quarantined>,
    /// Items listed per kind (quarantined ones included), for the confirmation budget.
    pub listed: BTreeMap<ResourceKind, usize>,
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
    /// Most items of a listing could not be read: the API changed shape, and going on would
    /// read as mass removals.
    #[error(
        "cannot collect {kind} resources: {bad} of the {total} items from GET {path} could not be \
         read ({reason}); the API's response has changed shape, so this poll stops rather than \
         guess. The items are not stored; see segwatch's release notes for a version that reads \
         this API"
    )]
    Shape {
        /// The kind being collected.
        kind: ResourceKind,
        /// The request path.
        path: String,
        /// Items that could not be read.
        bad: usize,
        /// Items listed.
        total: usize,
        /// The first item's problem.
        reason: String,
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

/// What reading one kind gave.
#[derive(Debug, Default)]
struct KindRead {
    resources: Vec<Resource>,
    quarantine: Vec<Quarantined>,
    /// Items that could not be read: `quarantine` keeps the first
    /// [`QUARANTINE_KEPT_PER_LISTING`] of them.
    unreadable: usize,
    /// Items listed, quarantined ones included.
    listed: usize,
    /// Set when the kind's endpoint refused (403/404): the kind is unavailable.
    refused: Option<(u16, String)>,
    /// Why the listing disagreed with itself (twice, once `list` is done): incomplete.
    inconsistent: Option<String>,
}

impl KindRead {
    fn refused(status: u16, reason: String) -> Self {
        KindRead {
            refused: Some((status, reason)),
            ..KindRead::default()
        }
    }
}

/// Turns a 403/404 from a kind's endpoints into an unavailable kind instead of a failed
/// collection.
async fn available<F>(kind: ResourceKind, read: F) -> Result<KindRead>
where
    F: std::future::Future<Output = Result<KindRead>>,
{
    match read.await {
        Err(CollectError::Api { cause, .. }) if cause.refusal().is_some() => {
            let (status, reason) = cause.refusal().expect("checked just above");
            tracing::warn!(%kind, status, reason = %reason,
                "not available to this workspace (its plan or the token lacks it); the other kinds are still read");
            Ok(KindRead::refused(status, reason))
        }
        other => other,
    }
}

/// Reads the whole workspace. Kinds are fetched concurrently; the client bounds the number of
/// requests in flight. `GET /` must succeed (it proves the token); any other kind may be
/// unavailable.
pub async fn collect(
    client: &SegmentClient,
    policy: &SecretPolicy,
    options: &CollectOptions,
) -> Result<Collection> {
    // Every kind at once; the client bounds the requests in flight.
    let kinds: Vec<ResourceKind> = ResourceKind::ALL
        .into_iter()
        .filter(|k| *k != ResourceKind::Workspace && options.collects(*k))
        .collect();
    let (workspace, reads) = tokio::try_join!(
        workspace(client, policy),
        futures_util::future::try_join_all(
            kinds
                .iter()
                .map(|kind| available(*kind, read_kind(client, policy, *kind)))
        ),
    )?;
    let workspace_id = workspace.id.clone();
    let mut collection = Collection {
        workspace_id,
        resources: vec![workspace],
        kind_status: KindStatuses::new(),
        quarantine: Vec::new(),
        listed: BTreeMap::new(),
    };
    for (kind, read) in kinds.into_iter().zip(reads) {
        collection.absorb(kind, read)?;
    }
    collection
        .resources
        .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Ok(collection)
}

impl Collection {
    /// Adds one kind's read: its resources, its quarantined items and its status.
    fn absorb(&mut self, kind: ResourceKind, mut read: KindRead) -> Result<()> {
        if let Some((http_status, reason)) = read.refused.take() {
            self.kind_status.insert(
                kind,
                KindStatus::Unavailable {
                    http_status,
                    reason,
                    carried: false,
                },
            );
            return Ok(());
        }
        let bad = read.unreadable;
        if bad > 0 {
            let first = &read.quarantine[0];
            // Most of a listing unreadable is a new response shape, not a few odd records.
            if bad >= 2 && bad * 2 > read.listed {
                return Err(CollectError::Shape {
                    kind,
                    path: first.path.clone(),
                    bad,
                    total: read.listed,
                    reason: first.reason.clone(),
                });
            }
            tracing::warn!(%kind, quarantined = bad, first = %first.reason,
                "some items could not be read; kept in quarantine, and none of this kind is recorded as removed this poll");
            self.kind_status.insert(
                kind,
                KindStatus::Incomplete {
                    reason: format!(
                        "{bad} of {} {} quarantined (first: {})",
                        read.listed,
                        if read.listed == 1 { "item" } else { "items" },
                        first.reason
                    ),
                },
            );
        }
        if let Some(why) = read.inconsistent.take() {
            tracing::warn!(%kind, why = %why, "none of this kind is recorded as removed this poll");
            let status = self
                .kind_status
                .entry(kind)
                .or_insert(KindStatus::Incomplete {
                    reason: String::new(),
                });
            if let KindStatus::Incomplete { reason } = status {
                if !reason.is_empty() {
                    reason.push_str("; ");
                }
                reason.push_str(&why);
            }
        }
        self.listed.insert(kind, read.listed);
        self.quarantine.append(&mut read.quarantine);
        self.resources.append(&mut read.resources);
        Ok(())
    }

    /// Whether removals of `kind` may be recorded: it was read in full.
    pub fn is_complete(&self, kind: ResourceKind) -> bool {
        !self.kind_status.contains_key(&kind)
    }
}

async fn workspace(client: &SegmentClient, policy: &SecretPolicy) -> Result<Resource> {
    let kind = ResourceKind::Workspace;
    let value = client
        .get_object("/", "workspace")
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?;
    to_resource(kind, "/", 0, value, policy)
}

async fn labels(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
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
    let mut read = KindRead::default();
    for item in items {
        read.convert(kind, "/labels", item, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

impl KindRead {
    /// Converts the next listed item, quarantining it when it cannot be identified.
    fn convert(&mut self, kind: ResourceKind, path: &str, item: Value, policy: &SecretPolicy) {
        let index = self.listed;
        self.listed += 1;
        if let Some(reason) = unusable(kind, &item) {
            self.quarantine(kind, path, index, reason, item, policy);
            return;
        }
        self.push(kind, path, index, item, policy);
    }

    fn quarantine(
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
    fn dedupe(&mut self, kind: ResourceKind) -> Option<String> {
        let (kept, repeated) = dedupe(kind, std::mem::take(&mut self.resources));
        self.resources = kept;
        repeated
    }
}

/// Why a listed item cannot become a resource, checked before any sub-request is made for it.
fn unusable(kind: ResourceKind, item: &Value) -> Option<String> {
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

/// A listing whose pages disagree with each other (an id on two pages, `totalEntries` moving,
/// a short page before the last) changed while it was read: it is read once more, and if the
/// second read disagrees too, the kind is incomplete for the poll (nothing of it removed).
async fn list(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    path: &str,
    key: &str,
) -> Result<KindRead> {
    let mut read = list_once(client, policy, kind, path, key).await?;
    if let Some(first) = read.inconsistent.take() {
        tracing::warn!(%kind, path, why = %first, "the list changed while it was read; reading it again");
        read = list_once(client, policy, kind, path, key).await?;
        if let Some(second) = read.inconsistent.take() {
            read.inconsistent = Some(disagreed(path, &first, &second));
        }
    }
    Ok(read)
}

fn disagreed(path: &str, first: &str, second: &str) -> String {
    format!("GET {path} disagreed with itself on two reads ({first}; then {second})")
}

/// One read of a listing, items converted page by page (so 100,000 users never sit in memory
/// as JSON trees); `inconsistent` says why its pages disagree, if they do.
async fn list_once(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    path: &str,
    key: &str,
) -> Result<KindRead> {
    let mut pages = client.pages(path, key);
    let mut read = KindRead::default();
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?
    {
        for item in page {
            read.convert(kind, path, item, policy);
        }
    }
    read.inconsistent = read
        .dedupe(kind)
        .map(|id| format!("`{id}` was listed twice"))
        .or_else(|| pages.disagreement().map(str::to_owned));
    Ok(read)
}

/// `an id listed twice (…)` when `ids` repeat one.
fn repeated<'a>(ids: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut seen = HashSet::new();
    let mut ids = ids;
    ids.find(|id| !seen.insert(*id))
        .map(|id| format!("`{id}` was listed twice"))
}

/// Every item of a paginated listing, split into those that can be identified (with their
/// index) and the quarantined rest; a listing whose pages disagree is read once more, as
/// [`list`] does.
async fn raw_list(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    path: &str,
    key: &str,
    query: Vec<(String, String)>,
    read: &mut KindRead,
) -> Result<Vec<(usize, Value)>> {
    let attempt = || KindRead {
        listed: read.listed,
        ..KindRead::default()
    };
    let mut chosen = attempt();
    let (mut items, why) = raw_list_once(
        client,
        policy,
        kind,
        (path, key),
        query.clone(),
        &mut chosen,
    )
    .await?;
    if let Some(first) = why {
        tracing::warn!(%kind, path, why = %first, "the list changed while it was read; reading it again");
        chosen = attempt();
        let (again, why) =
            raw_list_once(client, policy, kind, (path, key), query, &mut chosen).await?;
        items = again;
        if let Some(second) = why {
            chosen.inconsistent = Some(disagreed(path, &first, &second));
        }
    }
    read.listed = chosen.listed;
    read.unreadable += chosen.unreadable;
    let room = QUARANTINE_KEPT_PER_LISTING.saturating_sub(read.quarantine.len());
    read.quarantine
        .extend(chosen.quarantine.into_iter().take(room));
    if let Some(why) = chosen.inconsistent {
        read.inconsistent.get_or_insert(why);
    }
    Ok(items)
}

async fn raw_list_once(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    (path, key): (&str, &str),
    query: Vec<(String, String)>,
    read: &mut KindRead,
) -> Result<(Vec<(usize, Value)>, Option<String>)> {
    let mut pages = client.pages_with_query(path, query, key);
    let mut out = Vec::new();
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|cause| CollectError::Api { kind, cause })?
    {
        for item in page {
            let index = read.listed;
            read.listed += 1;
            match unusable(kind, &item) {
                Some(reason) => read.quarantine(kind, path, index, reason, item, policy),
                None => out.push((index, item)),
            }
        }
    }
    let why = repeated(out.iter().filter_map(|(_, item)| string_field(item, "id")))
        .or_else(|| pages.disagreement().map(str::to_owned));
    Ok((out, why))
}

/// Members (`/groups/{id}/users`) and pending invites (`/groups/{id}/invites`) of one group,
/// folded into its body as `members` and `invites`, so a membership change is a change of the
/// group. `false` when the group was deleted since it was listed (404): it is left out, and a
/// group segwatch holds is then confirmed gone or found by [`confirm_missing`].
async fn group_extras(
    client: &SegmentClient,
    id: &str,
    group: &mut Value,
) -> std::result::Result<bool, SegmentError> {
    let segment = encode_segment(id);
    let members = match client
        .list_all(&format!("/groups/{segment}/users"), "users")
        .await
    {
        Err(e) if e.is_not_found() => return Ok(false),
        other => other?,
    };
    let mut invites = match client
        .list_all(&format!("/groups/{segment}/invites"), "emails")
        .await
    {
        Err(e) if e.is_not_found() => return Ok(false),
        other => other?,
    };
    // Pending invites are a set; their order is not data.
    invites.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    if let Value::Object(map) = group {
        map.insert("members".into(), Value::Array(members));
        map.insert("invites".into(), Value::Array(invites));
    }
    Ok(true)
}

/// Groups with their members and pending invites ([`group_extras`]).
async fn groups(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
    let kind = ResourceKind::Group;
    let path = "/groups";
    let mut read = KindRead::default();
    let raw = raw_list(
        client,
        policy,
        kind,
        path,
        "userGroups",
        Vec::new(),
        &mut read,
    )
    .await?;
    let mut tasks = JoinSet::new();
    for (index, mut group) in raw {
        let client = client.clone();
        tasks.spawn(async move {
            let id = string_field(&group, "id").unwrap_or_default().to_owned();
            let present = group_extras(&client, &id, &mut group).await?;
            Ok::<_, SegmentError>((index, present.then_some(group)))
        });
    }
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, group) = joined
            .expect("group collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        done.extend(group.map(|group| (index, group)));
    }
    done.sort_by_key(|(index, _)| *index);
    for (index, group) in done {
        read.push(kind, path, index, group, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

impl KindRead {
    /// Converts an item already checked by [`unusable`] (so `to_resource` finds what it
    /// needs; the item is not cloned for the unlikely error, which is quarantined without it).
    fn push(
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

/// Where a kind with connected sources lives: (list path, items key, get-by-id key), (sub
/// path, body field).
fn connected(
    kind: ResourceKind,
) -> (
    (&'static str, &'static str, &'static str),
    (&'static str, &'static str),
) {
    match kind {
        ResourceKind::Warehouse => (
            ("/warehouses", "warehouses", "warehouse"),
            ("connected-sources", "connectedSourceIds"),
        ),
        _ => (
            ("/tracking-plans", "trackingPlans", "trackingPlan"),
            ("sources", "sourceIds"),
        ),
    }
}

/// The ids of the sources connected to one warehouse or tracking plan, stored sorted in its
/// body; `false` when the item was deleted since it was listed (404).
async fn add_connected_sources(
    client: &SegmentClient,
    kind: ResourceKind,
    id: &str,
    item: &mut Value,
) -> std::result::Result<bool, SegmentError> {
    let ((path, _, _), (sub_path, field)) = connected(kind);
    let sub = format!("{path}/{}/{sub_path}", encode_segment(id));
    let sources = match client.list_all(&sub, "sources").await {
        Ok(sources) => sources,
        Err(e) if e.status() == Some(404) => {
            tracing::debug!(%kind, path = %sub, "gone since it was listed; left out");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    // Connections are a set: sorted ids, so the API's order is not a change.
    let mut ids: Vec<String> = sources
        .iter()
        .filter_map(|s| string_field(s, "id"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    if let Value::Object(map) = item {
        map.insert(
            field.into(),
            Value::Array(ids.into_iter().map(Value::String).collect()),
        );
    }
    Ok(true)
}

/// Warehouses or tracking plans with the ids of the sources connected to each: a warehouse's
/// `connectedSourceIds`, a tracking plan's `sourceIds`. One request per item, not per source.
/// An item deleted between the two reads (404) is left out, as the next poll would find.
async fn with_connected_sources(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
) -> Result<KindRead> {
    let ((path, key, _), _) = connected(kind);
    let mut read = KindRead::default();
    let raw = raw_list(client, policy, kind, path, key, Vec::new(), &mut read).await?;
    let mut tasks = JoinSet::new();
    for (index, mut item) in raw {
        let client = client.clone();
        tasks.spawn(async move {
            let id = string_field(&item, "id").unwrap_or_default().to_owned();
            let present = add_connected_sources(&client, kind, &id, &mut item).await?;
            Ok::<_, SegmentError>((index, present.then_some(item)))
        });
    }
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, item) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        done.extend(item.map(|item| (index, item)));
    }
    done.sort_by_key(|(index, _)| *index);
    for (index, item) in done {
        read.push(kind, path, index, item, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

/// Merges `GET /functions/{id}` into a function's list item: the full object's fields win,
/// fields only the list item has are kept. `None` when it was deleted since it was listed.
async fn function_detail(
    client: &SegmentClient,
    id: &str,
    mut item: Value,
) -> std::result::Result<Option<Value>, SegmentError> {
    let one = format!("/functions/{}", encode_segment(id));
    let detail = match client.get_object(&one, "function").await {
        Ok(full) => full,
        Err(e) if e.status() == Some(404) => {
            tracing::debug!(path = %one, "function gone since it was listed; left out");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match (&mut item, detail) {
        (Value::Object(map), Value::Object(detail)) => map.extend(detail),
        (_, detail) => item = detail,
    }
    Ok(Some(item))
}

/// Functions of every type in [`FUNCTION_TYPES`]. List items lack the code and settings, so each
/// function is read again ([`function_detail`]). A type the API rejects (400 or 422, as
/// versions before insert functions do) is skipped.
async fn functions(client: &SegmentClient, policy: &SecretPolicy) -> Result<KindRead> {
    let kind = ResourceKind::Function;
    let path = "/functions";
    let mut read = KindRead::default();
    let mut listed = Vec::new();
    for resource_type in FUNCTION_TYPES {
        let query = vec![("resourceType".to_string(), resource_type.to_string())];
        match raw_list(client, policy, kind, path, "functions", query, &mut read).await {
            Ok(items) => listed.extend(items),
            Err(CollectError::Api { cause, .. }) if matches!(cause.status(), Some(400 | 422)) => {
                tracing::debug!(
                    resource_type,
                    error = %cause,
                    "the API does not list this function type; skipped"
                );
            }
            Err(e) => return Err(e),
        }
    }
    let mut tasks = JoinSet::new();
    for (index, item) in listed {
        let client = client.clone();
        tasks.spawn(async move {
            let id = string_field(&item, "id").unwrap_or_default().to_owned();
            Ok::<_, SegmentError>((index, function_detail(&client, &id, item).await?))
        });
    }
    let mut done = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        let (index, item) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        done.extend(item.map(|item| (index, item)));
    }
    done.sort_by_key(|(index, _)| *index);
    for (index, item) in done {
        read.push(kind, path, index, item, policy);
    }
    read.dedupe(kind);
    Ok(read)
}

/// What [`confirm_missing`] found about resources missing from their lists.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Confirmation {
    /// Missing resources checked.
    pub checked: usize,
    /// Of which still exist (a page shifted under the read): put back into the collection.
    pub found: usize,
    /// Requests spent.
    pub requests: u64,
}

/// The get-by-id route of a kind: (path prefix, envelope key). Roles, invites and labels have
/// none; the workspace is never missing.
fn get_route(kind: ResourceKind) -> Option<(&'static str, &'static str)> {
    match kind {
        ResourceKind::User => Some(("/users", "user")),
        ResourceKind::Group => Some(("/groups", "userGroup")),
        ResourceKind::Source => Some(("/sources", "source")),
        ResourceKind::Destination => Some(("/destinations", "destination")),
        ResourceKind::Warehouse => Some(("/warehouses", "warehouse")),
        ResourceKind::Function => Some(("/functions", "function")),
        ResourceKind::TrackingPlan => Some(("/tracking-plans", "trackingPlan")),
        _ => None,
    }
}

/// Reads one kind in full (for [`collect`], and again for [`confirm_missing`]).
async fn read_kind(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
) -> Result<KindRead> {
    use ResourceKind as K;
    match kind {
        K::Role => list(client, policy, kind, "/roles", "roles").await,
        K::User => list(client, policy, kind, "/users", "users").await,
        K::Invite => list(client, policy, kind, "/invites", "invites").await,
        K::Source => list(client, policy, kind, "/sources", "sources").await,
        K::Destination => list(client, policy, kind, "/destinations", "destinations").await,
        K::Group => groups(client, policy).await,
        K::Warehouse | K::TrackingPlan => with_connected_sources(client, policy, kind).await,
        K::Function => functions(client, policy).await,
        K::Label => labels(client, policy).await,
        K::Workspace | K::AuditEvent => Ok(KindRead::default()),
    }
}

/// Reads one resource by id, with the sub-requests its kind needs: `None` when it is gone
/// (404).
async fn get_one(
    client: &SegmentClient,
    kind: ResourceKind,
    id: &str,
) -> std::result::Result<Option<Value>, SegmentError> {
    let Some((path, key)) = get_route(kind) else {
        return Ok(None);
    };
    let one = format!("{path}/{}", encode_segment(id));
    let mut item = match client.get_object(&one, key).await {
        Ok(item) => item,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let present = match kind {
        ResourceKind::Group => group_extras(client, id, &mut item).await?,
        ResourceKind::Warehouse | ResourceKind::TrackingPlan => {
            add_connected_sources(client, kind, id, &mut item).await?
        }
        _ => true,
    };
    Ok(present.then_some(item))
}

/// Checks resources segwatch holds that this collection's lists did not return, before any is
/// recorded as removed. Segment's cursors are offsets: an item deleted while a list is read
/// shifts the pages after it, and one item that still exists is never listed.
///
/// Per kind, the cheaper of two bounded checks: a `GET` by id for each missing resource, or —
/// when more are missing than the listing had pages, and for roles and invites, which have no
/// get-by-id route — one more read of the whole list. Resources that still exist are put back
/// into the collection (with what the API says of them now); the rest are gone. `/labels` is a
/// single response and cannot shift, so its missing labels are gone without a request.
pub async fn confirm_missing(
    client: &SegmentClient,
    policy: &SecretPolicy,
    collection: &mut Collection,
    missing: &[(ResourceKind, String)],
) -> Result<Confirmation> {
    let requests_before = client.stats().requests;
    let mut by_kind: BTreeMap<ResourceKind, Vec<&str>> = BTreeMap::new();
    for (kind, id) in missing {
        if !matches!(
            kind,
            ResourceKind::Label | ResourceKind::Workspace | ResourceKind::AuditEvent
        ) {
            by_kind.entry(*kind).or_default().push(id);
        }
    }
    let mut report = Confirmation::default();
    let page = client.page_size().max(1) as usize;
    for (kind, ids) in by_kind {
        report.checked += ids.len();
        let pages = collection
            .listed
            .get(&kind)
            .copied()
            .unwrap_or(0)
            .div_ceil(page)
            .max(1);
        let found: Vec<Value> = if get_route(kind).is_none() || ids.len() > pages {
            let wanted: HashSet<&str> = ids.iter().copied().collect();
            let again = read_kind(client, policy, kind).await?;
            // `read_kind` does not turn a refusal into an unavailable kind: readable a moment
            // ago, a 403/404 now fails the poll as the fault it is.
            let found: Vec<Resource> = again
                .resources
                .into_iter()
                .filter(|r| wanted.contains(r.id.as_str()))
                .collect();
            report.found += found.len();
            collection.resources.extend(found);
            Vec::new()
        } else {
            let mut tasks = JoinSet::new();
            for id in ids {
                let client = client.clone();
                let id = id.to_owned();
                tasks.spawn(async move { get_one(&client, kind, &id).await });
            }
            let mut found = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                let item = joined
                    .expect("confirmation tasks do not panic")
                    .map_err(|cause| CollectError::Api { kind, cause })?;
                found.extend(item);
            }
            found
        };
        let path = get_route(kind).map_or("", |(p, _)| p);
        for item in found {
            let mut read = KindRead::default();
            read.convert(kind, path, item, policy);
            report.found += read.resources.len();
            collection.resources.append(&mut read.resources);
            if !read.quarantine.is_empty() {
                collection
                    .kind_status
                    .entry(kind)
                    .or_insert(KindStatus::Incomplete {
                        reason: format!(
                            "an item read by id could not be read: {}",
                            read.quarantine[0].reason
                        ),
                    });
                collection.quarantine.append(&mut read.quarantine);
            }
        }
    }
    if report.found > 0 {
        tracing::warn!(
            found = report.found,
            checked = report.checked,
            "resources missing from a list still exist (a page shifted while it was read); kept"
        );
        collection
            .resources
            .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        collection
            .resources
            .dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
    }
    report.requests = client.stats().requests - requests_before;
    Ok(report)
}

/// What one request to a kind's list endpoint says about it (for `check-connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The endpoint answered with a list.
    Readable,
    /// 403 or 404: the workspace's plan or the token lacks the feature; polls skip the kind.
    Unavailable(u16, String),
    /// Anything else: polls would fail on it.
    Failed(String),
}

/// Reads the first page (one item) of every list a poll with `options` reads, the audit
/// trail's included, so an operator learns which features this workspace offers before the
/// first poll. Use a client whose `page_size` is 1.
pub async fn probe(
    client: &SegmentClient,
    options: &CollectOptions,
    audit_trail: bool,
) -> Vec<(&'static str, Probe)> {
    use ResourceKind as K;
    let now = chrono::Utc::now();
    let window = vec![
        (
            "startTime".to_owned(),
            segwatch_core::trail::format_time(now - chrono::Duration::hours(1)),
        ),
        ("endTime".to_owned(), segwatch_core::trail::format_time(now)),
    ];
    // (kind, its name, list path, items key, query)
    type List = (
        ResourceKind,
        &'static str,
        &'static str,
        &'static str,
        Vec<(String, String)>,
    );
    let lists: [List; 11] = [
        (K::Role, "role", "/roles", "roles", vec![]),
        (K::User, "user", "/users", "users", vec![]),
        (K::Group, "group", "/groups", "userGroups", vec![]),
        (K::Invite, "invite", "/invites", "invites", vec![]),
        (K::Source, "source", "/sources", "sources", vec![]),
        (K::Label, "label", "/labels", "labels", vec![]),
        (
            K::Destination,
            "destination",
            "/destinations",
            "destinations",
            vec![],
        ),
        (
            K::Warehouse,
            "warehouse",
            "/warehouses",
            "warehouses",
            vec![],
        ),
        (
            K::Function,
            "function",
            "/functions",
            "functions",
            vec![("resourceType".to_owned(), "SOURCE".to_owned())],
        ),
        (
            K::TrackingPlan,
            "tracking_plan",
            "/tracking-plans",
            "trackingPlans",
            vec![],
        ),
        (
            K::AuditEvent,
            "audit_event",
            segwatch_core::trail::PATH,
            "events",
            window,
        ),
    ];
    let mut out = Vec::with_capacity(lists.len());
    for (kind, name, path, key, query) in lists {
        let wanted = match kind {
            K::AuditEvent => audit_trail,
            k => options.collects(k),
        };
        if !wanted {
            continue;
        }
        let probe = match client.pages_with_query(path, query, key).next_page().await {
            Ok(_) => Probe::Readable,
            Err(e) => match e.refusal() {
                Some((status, reason)) => Probe::Unavailable(status, reason),
                None => Probe::Failed(e.to_string()),
            },
        };
        out.push((name, probe));
    }
    out
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

/// Keeps the last of any repeated id, and returns the first id listed twice, if any. Offset
/// pagination over a list that changes mid-read can repeat an item; storing both would break
/// the one-version-per-resource invariant.
fn dedupe(kind: ResourceKind, mut items: Vec<Resource>) -> (Vec<Resource>, Option<String>) {
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
        let (kept, repeated) = dedupe(ResourceKind::Role, vec![r("a", 1), r("b", 1), r("a", 2)]);
        assert_eq!(repeated.as_deref(), Some("a"));
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].id, "a");
        assert!(kept[1].body.contains("\"n\":2"));
    }

    #[test]
    fn unreadable_items_are_quarantined_and_make_the_kind_incomplete() {
        let p = SecretPolicy::default();
        let mut read = KindRead::default();
        read.convert(
            ResourceKind::User,
            "/users",
            json!({"id": "u1", "email": "a@x.io"}),
            &p,
        );
        read.convert(ResourceKind::User, "/users", json!({"email": "b@x.io"}), &p);
        read.convert(
            ResourceKind::User,
            "/users",
            json!({"id": "u3", "email": "c@x.io"}),
            &p,
        );
        read.convert(ResourceKind::User, "/users", json!(42), &p);
        read.convert(
            ResourceKind::User,
            "/users",
            json!({"id": "u5", "email": "e@x.io"}),
            &p,
        );
        assert_eq!(read.resources.len(), 3);
        let reasons: Vec<(usize, &str)> = read
            .quarantine
            .iter()
            .map(|q| (q.position, q.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [(1, "has no `id`"), (3, "expected an object, got a number")]
        );
        let mut c = Collection {
            workspace_id: "w".into(),
            resources: Vec::new(),
            kind_status: KindStatuses::new(),
            quarantine: Vec::new(),
            listed: BTreeMap::new(),
        };
        c.absorb(ResourceKind::User, read).unwrap();
        assert!(!c.is_complete(ResourceKind::User));
        assert_eq!(
            c.kind_status[&ResourceKind::User].to_string(),
            "incomplete: 2 of 5 items quarantined (first: has no `id`)"
        );
        assert_eq!(c.quarantine.len(), 2);
    }

    #[test]
    fn most_of_a_listing_unreadable_is_a_new_api_shape() {
        let p = SecretPolicy::default();
        let mut read = KindRead::default();
        read.convert(ResourceKind::Source, "/sources", json!({"id": "s1"}), &p);
        for _ in 0..2 {
            read.convert(
                ResourceKind::Source,
                "/sources",
                json!({"sourceId": "s"}),
                &p,
            );
        }
        let mut c = Collection {
            workspace_id: "w".into(),
            resources: Vec::new(),
            kind_status: KindStatuses::new(),
            quarantine: Vec::new(),
            listed: BTreeMap::new(),
        };
        let err = c
            .absorb(ResourceKind::Source, read)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 of the 3 items from GET /sources could not be read")
                && err.contains("changed shape"),
            "{err}"
        );
    }

    #[test]
    fn quarantined_items_are_redacted_and_bounded() {
        let p = SecretPolicy::default();
        let mut read = KindRead::default();
        let big = "x".repeat(segwatch_core::model::QUARANTINE_RAW_MAX + 10);
        read.convert(
            ResourceKind::Source,
            "/sources",
            json!({"name": "web", "writeKeys": ["clear-key"], "blob": big}),
            &p,
        );
        let q = &read.quarantine[0];
        assert!(!q.raw.contains("clear-key"), "write keys are fingerprinted");
        assert!(q.truncated && q.raw.len() <= segwatch_core::model::QUARANTINE_RAW_MAX);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("abc_09-Z"), "abc_09-Z");
        // Dots too: `..` as a segment would be normalised away by URL parsing.
        assert_eq!(encode_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
