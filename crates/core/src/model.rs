//! The vocabulary shared by every stage: resource kinds and collected resources.
//!
//! A [`Resource`] is one Segment object as segwatch stores it: already redacted and in
//! canonical form (see [`crate::canonical`]), so that two polls of an unchanged object give
//! byte-identical bodies and therefore the same content hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kinds of Segment resources segwatch collects, and the audit trail's events.
///
/// The string forms (`as_str`) are stored in the database and used by rules; they never change.
/// [`ResourceKind::ALL`] lists the collected kinds; [`ResourceKind::AuditEvent`] is not one of
/// them (events are appended, never versioned or diffed) but rules and alerts can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// The workspace itself (`GET /`).
    Workspace,
    /// A role definition (`GET /roles`).
    Role,
    /// A workspace user with their permissions (`GET /users`).
    User,
    /// A user group with its permissions, members and pending invites (`GET /groups`).
    Group,
    /// A pending workspace invite (`GET /invites`), identified by its email.
    Invite,
    /// A source with its settings and labels; write keys are fingerprinted (`GET /sources`).
    Source,
    /// A label defined in the workspace (`GET /labels`), identified by `key:value`.
    Label,
    /// A destination fed by one source; secret-looking settings are fingerprinted
    /// (`GET /destinations`).
    Destination,
    /// A warehouse with the ids of its connected sources (`connectedSourceIds`); credentials in
    /// its settings are fingerprinted (`GET /warehouses`).
    Warehouse,
    /// A source, destination or insert function (`GET /functions`, `GET /functions/{id}`); its
    /// code is fingerprinted unless configured otherwise.
    Function,
    /// A tracking plan with the ids of its connected sources (`sourceIds`)
    /// (`GET /tracking-plans`).
    #[serde(rename = "tracking_plan")]
    TrackingPlan,
    /// A destination filter (`GET /destination/{destinationId}/filters`, one listing per
    /// destination; `DestinationFilterV1`): its `if` condition, `actions` and `enabled`.
    #[serde(rename = "destination_filter")]
    DestinationFilter,
    /// An Actions subscription of a destination (`GET /destinations/{destinationId}/
    /// subscriptions`, one listing per destination; `DestinationSubscription`): its trigger and
    /// field mapping (`settings`), whose secret-looking values are fingerprinted.
    #[serde(rename = "destination_subscription")]
    DestinationSubscription,
    /// A source's schema settings (`GET /sources/{sourceId}/settings`, one request per source),
    /// identified by the source's id: whether unplanned events and traits pass its tracking
    /// plan, and where blocked events go.
    #[serde(rename = "source_schema_settings")]
    SourceSchemaSettings,
    /// A transformation of a source's events (`GET /transformations`; `TransformationV1`): what
    /// it drops, allows, renames or hashes; its hashing key is fingerprinted.
    Transformation,
    /// A reverse ETL model (`GET /reverse-etl-models`; not in the v32 spec, `ReverseEtlModel`
    /// in Segment's current SDK): the SQL query that extracts rows from a warehouse source to
    /// send to destinations. Unavailable on an API without it.
    #[serde(rename = "reverse_etl_model")]
    ReverseEtlModel,
    /// An event of the audit trail (`GET /audit-events`), identified by its id: the subject of
    /// audit-event rules and their alerts, never a versioned resource.
    AuditEvent,
    /// A grant of effective access gained or lost ([`crate::access`]): the subject of access
    /// rules and their alerts, derived from users, groups and sources, never collected.
    Access,
}

impl ResourceKind {
    /// Every kind, in the order they are collected and reported.
    pub const ALL: [ResourceKind; 16] = [
        ResourceKind::Workspace,
        ResourceKind::Role,
        ResourceKind::User,
        ResourceKind::Group,
        ResourceKind::Invite,
        ResourceKind::Source,
        ResourceKind::Label,
        ResourceKind::Destination,
        ResourceKind::Warehouse,
        ResourceKind::Function,
        ResourceKind::TrackingPlan,
        ResourceKind::DestinationFilter,
        ResourceKind::DestinationSubscription,
        ResourceKind::SourceSchemaSettings,
        ResourceKind::Transformation,
        ResourceKind::ReverseEtlModel,
    ];

    /// The size of a per-kind table: every collected kind, then [`ResourceKind::AuditEvent`]
    /// and [`ResourceKind::Access`] (rules can be about audit events and access changes too).
    pub const COUNT: usize = Self::ALL.len() + 2;

    /// Position of this kind in a per-kind table: its position in [`ResourceKind::ALL`], then
    /// the two last slots for [`ResourceKind::AuditEvent`] and [`ResourceKind::Access`]
    /// (declared last for this reason).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable lowercase name used in the database, in rules and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Workspace => "workspace",
            ResourceKind::Role => "role",
            ResourceKind::User => "user",
            ResourceKind::Group => "group",
            ResourceKind::Invite => "invite",
            ResourceKind::Source => "source",
            ResourceKind::Label => "label",
            ResourceKind::Destination => "destination",
            ResourceKind::Warehouse => "warehouse",
            ResourceKind::Function => "function",
            ResourceKind::TrackingPlan => "tracking_plan",
            ResourceKind::DestinationFilter => "destination_filter",
            ResourceKind::DestinationSubscription => "destination_subscription",
            ResourceKind::SourceSchemaSettings => "source_schema_settings",
            ResourceKind::Transformation => "transformation",
            ResourceKind::ReverseEtlModel => "reverse_etl_model",
            ResourceKind::AuditEvent => "audit_event",
            ResourceKind::Access => "access",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no resource kind.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown resource kind `{0}`; expected one of: workspace, role, user, group, invite, source, label, destination, warehouse, function, tracking_plan, destination_filter, destination_subscription, source_schema_settings, transformation, reverse_etl_model"
)]
pub struct UnknownKind(pub String);

impl FromStr for ResourceKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::ALL
            .into_iter()
            .chain([ResourceKind::AuditEvent, ResourceKind::Access])
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// One collected resource, redacted and canonical, ready to be stored and diffed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// What kind of resource this is.
    pub kind: ResourceKind,
    /// Segment's id (for invites the email, for labels `key:value`).
    pub id: String,
    /// A human name: email for users and invites, the display name for functions, the settings'
    /// or catalog name for warehouses, name (else slug, else id) for the rest.
    pub name: String,
    /// Canonical compact JSON of the redacted object.
    pub body: String,
    /// Hex SHA-256 of `body`.
    pub hash: String,
}

impl Resource {
    /// Builds a resource from an already redacted value, canonicalising it and hashing the result.
    pub fn new(kind: ResourceKind, id: String, name: String, value: serde_json::Value) -> Self {
        let canonical = crate::canonical::canonicalize(value);
        let body = serde_json::to_string(&canonical).expect("a JSON value always serialises");
        let hash = sha256_hex(body.as_bytes());
        Resource {
            kind,
            id,
            name,
            body,
            hash,
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Who made a change, read from Segment's audit trail: the latest audit event on the same
/// resource between the two snapshots. Every field is `None` when no event matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The event's actor: a user id, or an API token's id such as `public-api-token/TJ7z8cg6`
    /// (never the token itself).
    pub actor: Option<String>,
    /// The actor's email: the event's `actorEmail`, or the email of the user the actor names.
    pub actor_email: Option<String>,
    /// The event's type, e.g. `User Policy Updated`.
    pub event_type: Option<String>,
    /// Segment's id of the event, e.g. `events/145876976`.
    pub event_id: Option<String>,
}

impl Attribution {
    /// Whether an audit event was matched.
    pub fn is_known(&self) -> bool {
        self.actor.is_some()
    }

    /// The actor as people read it: the email when known, else the raw actor.
    pub fn who(&self) -> Option<&str> {
        self.actor_email.as_deref().or(self.actor.as_deref())
    }

    /// `by alice@acme.io (User Policy Updated)`, or `actor unknown`.
    pub fn describe(&self) -> String {
        match (self.who(), &self.event_type) {
            (Some(who), Some(t)) => format!("by {who} ({t})"),
            (Some(who), None) => format!("by {who}"),
            (None, _) => "actor unknown".to_string(),
        }
    }
}

/// How a poll read one kind when it could not read it in full (stored per snapshot in
/// `snapshots.kind_status`; a kind read in full has no entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KindStatus {
    /// The kind's list endpoint answered 403 or 404: a feature the workspace's plan or the
    /// token lacks. Nothing about the kind changed in this snapshot.
    Unavailable {
        /// 403 or 404.
        http_status: u16,
        /// What Segment said.
        reason: String,
        /// Whether stored versions of the kind were kept as last seen (it had been read before).
        #[serde(default)]
        carried: bool,
    },
    /// The kind was read, but some items could not be identified (quarantined) or a read was
    /// cut short: resources not seen were kept, not recorded as removed.
    Incomplete {
        /// Why.
        reason: String,
    },
}

impl KindStatus {
    /// `unavailable` or `incomplete`.
    pub fn label(&self) -> &'static str {
        match self {
            KindStatus::Unavailable { .. } => "unavailable",
            KindStatus::Incomplete { .. } => "incomplete",
        }
    }

    /// The reason, as stored.
    pub fn reason(&self) -> &str {
        match self {
            KindStatus::Unavailable { reason, .. } | KindStatus::Incomplete { reason } => reason,
        }
    }

    /// Whether the kind could not be read at all.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KindStatus::Unavailable { .. })
    }
}

impl fmt::Display for KindStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindStatus::Unavailable {
                http_status,
                reason,
                ..
            } => write!(f, "unavailable (HTTP {http_status}): {reason}"),
            KindStatus::Incomplete { reason } => write!(f, "incomplete: {reason}"),
        }
    }
}

/// The most of one quarantined item's JSON text kept; the rest is cut (and says so).
pub const QUARANTINE_RAW_MAX: usize = 64 * 1024;

/// The most items kept in quarantine from one listing in one poll; the rest are counted, not
/// kept, so a response of mostly odd records cannot fill memory with copies of itself.
pub const QUARANTINE_KEPT_PER_LISTING: usize = 100;

/// An item from the API that segwatch could not understand, kept as received (secret-looking
/// fields fingerprinted) with the reason, instead of failing the poll or dropping it silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The kind it was listed as ([`ResourceKind::AuditEvent`] for the audit trail).
    pub kind: ResourceKind,
    /// The request path it came from.
    pub path: String,
    /// Its index in that listing.
    pub position: usize,
    /// Why it could not be used.
    pub reason: String,
    /// The item as JSON text, at most [`QUARANTINE_RAW_MAX`] bytes.
    pub raw: String,
    /// Whether `raw` was cut.
    pub truncated: bool,
    /// SHA-256 of the whole item's JSON text: the same bad item read again is stored once.
    pub raw_sha256: String,
}

impl Quarantined {
    /// Quarantines `item` (already redacted by the caller).
    pub fn new(
        kind: ResourceKind,
        path: impl Into<String>,
        position: usize,
        reason: impl Into<String>,
        item: &serde_json::Value,
    ) -> Self {
        let mut raw = item.to_string();
        let raw_sha256 = sha256_hex(raw.as_bytes());
        let truncated = raw.len() > QUARANTINE_RAW_MAX;
        if truncated {
            let mut cut = QUARANTINE_RAW_MAX;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
        }
        Quarantined {
            kind,
            path: path.into(),
            position,
            reason: reason.into(),
            raw,
            truncated,
            raw_sha256,
        }
    }
}

/// Per-kind read status of one snapshot: only the kinds not read in full.
pub type KindStatuses = std::collections::BTreeMap<ResourceKind, KindStatus>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_index_their_position() {
        for (i, kind) in ResourceKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(kind.as_str().parse::<ResourceKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(ResourceKind::AuditEvent.index(), ResourceKind::COUNT - 2);
        assert_eq!(ResourceKind::Access.index(), ResourceKind::COUNT - 1);
        assert_eq!(
            "audit_event".parse::<ResourceKind>().unwrap(),
            ResourceKind::AuditEvent
        );
        assert_eq!(
            "access".parse::<ResourceKind>().unwrap(),
            ResourceKind::Access
        );
    }
}
