//! The data controls that stand between a source and where its data goes: destination filters
//! and Actions subscriptions (read per destination), source schema settings (per source),
//! transformations and reverse ETL models (plain listings).
//!
//! Paths, envelopes and fields follow Segment's Go SDK (`segmentio/public-api-sdk-go`):
//! `api/api_destination_filters.go` (`GET /destination/{destinationId}/filters`, singular
//! `destination`, paginated, `data.filters`) with `api/model_destination_filter_v1.go`;
//! `api/api_destinations.go` (`GET /destinations/{destinationId}/subscriptions`, paginated,
//! `data.subscriptions`) with `api/model_destination_subscription.go` and
//! `api/model_list_subscriptions_from_destination_alpha_output.go`; `api/api_sources.go`
//! (`GET /sources/{sourceId}/settings`, not paginated, `data: {sourceId, settings}`, as
//! `listSchemaSettingsInSource` in the v32 spec) with `api/model_source_settings_output_v1.go`.
//!
//! `api/api_reverse_etl.go` (`GET /reverse-etl-models`, paginated, `data.models`) with
//! `api/model_reverse_etl_model.go` and `api/model_list_reverse_etl_models_output.go`; the v32
//! spec has no reverse ETL, so an API that answers 400, 403, 404, 422 or 501 there lacks it.
//!
//! A per-parent kind first lists its parents' ids (`GET /destinations`, paginated), then reads
//! each parent's children concurrently through [`complete_each`](super::kinds): the client's
//! semaphore (`[segment] concurrency`) bounds the requests in flight, and its pacing and
//! retries apply to each request as to any other. A 404 on a child listing is a parent deleted
//! since it was listed when `GET` of the parent says 404 too (its children are left out, as the
//! next poll would find); otherwise the API lacks the endpoint and the kind is unavailable.

use serde_json::Value;

use super::items::{KindRead, string_field};
use super::kinds::encode_segment;
use super::{CollectError, Result};
use crate::segment::{SegmentClient, SegmentError};
use segwatch_core::model::ResourceKind;
use segwatch_core::redact::SecretPolicy;

/// Where a per-parent kind lives: its parents' listing and get-by-id route, and its own
/// listing under each parent.
#[derive(Debug, Clone, Copy)]
pub(super) struct PerParent {
    /// The parents' list path and items key, e.g. (`/destinations`, `destinations`).
    pub(super) parents: (&'static str, &'static str),
    /// The parent's get-by-id path prefix and envelope key.
    pub(super) parent_get: (&'static str, &'static str),
    /// The children's path before and after the parent's id, and their items key (`None`: the
    /// path answers one object, `data` itself, not a list).
    pub(super) children: (&'static str, &'static str, Option<&'static str>),
    /// The field naming the parent in each child, set when the API leaves it out.
    pub(super) parent_field: &'static str,
}

/// Destination filters: `GET /destination/{destinationId}/filters` (`data.filters`).
pub(super) const FILTERS: PerParent = PerParent {
    parents: ("/destinations", "destinations"),
    parent_get: ("/destinations", "destination"),
    children: ("/destination/", "/filters", Some("filters")),
    parent_field: "destinationId",
};

/// Actions subscriptions: `GET /destinations/{destinationId}/subscriptions`
/// (`data.subscriptions`).
pub(super) const SUBSCRIPTIONS: PerParent = PerParent {
    parents: ("/destinations", "destinations"),
    parent_get: ("/destinations", "destination"),
    children: ("/destinations/", "/subscriptions", Some("subscriptions")),
    parent_field: "destinationId",
};

/// Source schema settings: `GET /sources/{sourceId}/settings` (`data: {sourceId, settings}`).
pub(super) const SCHEMA_SETTINGS: PerParent = PerParent {
    parents: ("/sources", "sources"),
    parent_get: ("/sources", "source"),
    children: ("/sources/", "/settings", None),
    parent_field: "sourceId",
};

/// The per-parent layout of `kind`, if it is read per parent.
pub(super) fn per_parent(kind: ResourceKind) -> Option<PerParent> {
    match kind {
        ResourceKind::DestinationFilter => Some(FILTERS),
        ResourceKind::DestinationSubscription => Some(SUBSCRIPTIONS),
        ResourceKind::SourceSchemaSettings => Some(SCHEMA_SETTINGS),
        _ => None,
    }
}

/// Whether `status` says the API does not know the reverse ETL endpoint (an API older than
/// it): the kind is then unavailable, as on a plan without it.
pub(super) fn lacks_reverse_etl(status: Option<u16>) -> bool {
    matches!(status, Some(400 | 422 | 501))
}

/// Reverse ETL models (`GET /reverse-etl-models`, `data.models`). The endpoint is newer than
/// the v32 spec: an API that does not know it (400, 422, 501; 403 and 404 are turned into an
/// unavailable kind by the caller as for every kind) leaves the kind unavailable.
pub(super) async fn reverse_etl_models(
    client: &SegmentClient,
    policy: &SecretPolicy,
) -> Result<KindRead> {
    let kind = ResourceKind::ReverseEtlModel;
    match super::listing::list(client, policy, kind, "/reverse-etl-models", "models").await {
        Err(CollectError::Api { cause, .. }) if lacks_reverse_etl(cause.status()) => {
            let status = cause.status().expect("matched just above");
            tracing::warn!(%kind, status, error = %cause,
                "the API does not offer reverse ETL models; the other kinds are still read");
            Ok(KindRead::refused(status, cause.to_string()))
        }
        other => other,
    }
}

/// The ids and names of every parent, in listing order. A listing that disagrees with itself twice
/// leaves the kind incomplete (`read.inconsistent`): children of a parent it missed must not
/// read as removed.
async fn parent_ids(
    client: &SegmentClient,
    kind: ResourceKind,
    (path, key): (&str, &str),
    read: &mut KindRead,
) -> Result<Vec<(String, Option<String>)>> {
    let mut first_why = None;
    for _ in 0..2 {
        let mut pages = client.pages(path, key);
        let mut ids = Vec::new();
        let mut without_id = 0usize;
        while let Some(page) = pages
            .next_page()
            .await
            .map_err(|cause| CollectError::Api { kind, cause })?
        {
            without_id += page
                .iter()
                .filter(|item| string_field(item, "id").is_none())
                .count();
            ids.extend(page.iter().filter_map(|item| {
                let id = string_field(item, "id")?.to_owned();
                let name = string_field(item, "name")
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned);
                Some((id, name))
            }));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let why = ids
            .iter()
            .find(|(id, _)| !seen.insert(id.as_str()))
            .map(|(id, _)| format!("`{id}` was listed twice"))
            .or_else(|| pages.disagreement().map(str::to_owned));
        if without_id > 0 {
            // Their children cannot be asked for: the kind is not read in full, so none of
            // them reads as removed.
            read.inconsistent.get_or_insert(format!(
                "{without_id} item(s) of GET {path} have no id; their children were not read"
            ));
        }
        match (why, first_why.take()) {
            (None, _) => return Ok(ids),
            (Some(why), None) => {
                tracing::warn!(%kind, path, why = %why, "the parents' list changed while it was read; reading it again");
                first_why = Some(why);
            }
            (Some(second), Some(first)) => {
                read.inconsistent = Some(format!(
                    "GET {path} disagreed with itself on two reads ({first}; then {second})"
                ));
                let mut seen = std::collections::HashSet::new();
                ids.retain(|(id, _)| seen.insert(id.clone()));
                return Ok(ids);
            }
        }
    }
    unreachable!("the loop returns on its second pass")
}

/// The children of one parent, each naming its parent, and why their list disagreed with itself
/// while it was read (it changed meanwhile), if it did; `None` when the parent is gone.
async fn children_of(
    client: &SegmentClient,
    layout: PerParent,
    parent: &str,
) -> std::result::Result<Option<(Vec<Value>, Option<String>)>, SegmentError> {
    let (before, after, key) = layout.children;
    let segment = encode_segment(parent);
    let path = format!("{before}{segment}{after}");
    let mut shifted = None;
    let read = match key {
        Some(key) => {
            let mut pages = client.pages(&path, key);
            let mut all = Vec::new();
            let read = loop {
                match pages.next_page().await {
                    Ok(Some(items)) => all.extend(items),
                    Ok(None) => break Ok(all),
                    Err(e) => break Err(e),
                }
            };
            shifted = pages.disagreement().map(str::to_owned);
            read
        }
        // One object: `data` itself, e.g. `{sourceId, settings}`.
        None => client.get_object(&path, "settings").await.map(|settings| {
            let mut map = serde_json::Map::new();
            map.insert(layout.parent_field.into(), Value::String(parent.to_owned()));
            map.insert("settings".into(), settings);
            vec![Value::Object(map)]
        }),
    };
    let mut items = match read {
        Ok(items) => items,
        Err(e) if e.is_not_found() => {
            // The parent deleted since it was listed, or an API without this endpoint.
            let (prefix, envelope) = layout.parent_get;
            return match client
                .get_object(&format!("{prefix}/{segment}"), envelope)
                .await
            {
                Err(gone) if gone.is_not_found() => {
                    tracing::debug!(path = %path, "parent gone since it was listed; left out");
                    Ok(None)
                }
                Err(other) => Err(other),
                Ok(_) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    for item in &mut items {
        if let Value::Object(map) = item {
            map.entry(layout.parent_field)
                .or_insert_with(|| Value::String(parent.to_owned()));
        }
    }
    Ok(Some((items, shifted)))
}

/// Reads a per-parent kind: the parents' ids, then every parent's children concurrently.
pub(super) async fn read_per_parent(
    client: &SegmentClient,
    policy: &SecretPolicy,
    kind: ResourceKind,
    layout: PerParent,
) -> Result<KindRead> {
    let mut read = KindRead::default();
    let parents = parent_ids(client, kind, layout.parents, &mut read).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (parent, name)) in parents.into_iter().enumerate() {
        let client = client.clone();
        tasks.spawn(async move {
            children_of(&client, layout, &parent)
                .await
                .map(|children| (index, (parent, name), children))
        });
    }
    // Each parent's children become resources as soon as they arrive, so 10,000 sources'
    // settings never sit in memory as JSON trees; the collection sorts resources afterwards.
    let (before, after, single) = layout.children;
    while let Some(joined) = tasks.join_next().await {
        let (_, (parent, name), children) = joined
            .expect("collection tasks do not panic")
            .map_err(|cause| CollectError::Api { kind, cause })?;
        let Some((children, shifted)) = children else {
            continue;
        };
        let path = format!("{before}{}{after}", encode_segment(&parent));
        if let Some(why) = shifted {
            // A child the shifted pages skipped must not read as removed.
            tracing::warn!(%kind, path = %path, why = %why, "a list changed while it was read; the kind is not read in full this poll");
            read.inconsistent
                .get_or_insert(format!("GET {path} changed while it was read ({why})"));
        }
        for child in children {
            read.convert(kind, &path, child, policy);
        }
        // Settings have no name of their own: they are shown by their source's.
        if let (None, Some(name), Some(last)) = (single, name, read.resources.last_mut())
            && last.id == parent
        {
            last.name = name;
        }
    }
    read.resources.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(id) = read.dedupe(kind) {
        let why = format!("`{id}` was listed under two parents");
        read.inconsistent.get_or_insert(why);
    }
    Ok(read)
}
