//! Confirming that resources missing from their lists are gone, before any is recorded as
//! removed.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use tokio::task::JoinSet;

use super::items::KindRead;
use super::kinds::{add_connected_sources, encode_segment, group_extras, read_kind};
use super::{CollectError, Collection, Result};
use crate::segment::{SegmentClient, SegmentError};
use segwatch_core::model::{KindStatus, Resource, ResourceKind};
use segwatch_core::redact::SecretPolicy;

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
        // `api/api_transformations.go`: `GET /transformations/{id}`, `data.transformation`.
        ResourceKind::Transformation => Some(("/transformations", "transformation")),
        _ => None,
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
/// single response and cannot shift, so its missing labels are gone without a request; so are
/// the missing children of a kind read per parent (destination filters…): a parents' listing
/// that shifted left the kind incomplete, so none of its resources reach this check, and each
/// parent's children were read whole.
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
        ) && super::controls::per_parent(*kind).is_none()
        {
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
