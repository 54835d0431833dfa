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

mod confirm;
mod controls;
mod items;
mod kinds;
mod listing;
mod probe;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::segment::{SegmentClient, SegmentError};
use segwatch_core::model::{KindStatus, KindStatuses, Quarantined, Resource, ResourceKind};
use segwatch_core::redact::SecretPolicy;

pub use confirm::{Confirmation, confirm_missing};
pub use probe::{Probe, probe};

use items::KindRead;
use kinds::{read_kind, workspace};

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
    /// Destination filters, one listing per destination (read only when `destinations` is).
    pub destination_filters: bool,
    /// Actions subscriptions, one listing per destination (read only when `destinations` is).
    pub destination_subscriptions: bool,
    /// Sources' schema settings, one request per source.
    pub source_schema_settings: bool,
    /// Transformations.
    pub transformations: bool,
    /// Reverse ETL models (unavailable on an API without them).
    pub reverse_etl_models: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            destinations: true,
            warehouses: true,
            functions: true,
            tracking_plans: true,
            destination_filters: true,
            destination_subscriptions: true,
            source_schema_settings: true,
            transformations: true,
            reverse_etl_models: true,
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
            // Read per destination: only with the destinations.
            ResourceKind::DestinationFilter => self.destinations && self.destination_filters,
            ResourceKind::DestinationSubscription => {
                self.destinations && self.destination_subscriptions
            }
            ResourceKind::SourceSchemaSettings => self.source_schema_settings,
            ResourceKind::Transformation => self.transformations,
            ResourceKind::ReverseEtlModel => self.reverse_etl_models,
            ResourceKind::Workspace
            | ResourceKind::Role
            | ResourceKind::User
            | ResourceKind::Group
            | ResourceKind::Invite
            | ResourceKind::Source
            | ResourceKind::Label => true,
            // Read by the audit-trail stage, or derived by the poll: never collected.
            ResourceKind::AuditEvent | ResourceKind::Access => false,
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
