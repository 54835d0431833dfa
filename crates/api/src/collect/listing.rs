//! Reading a paginated listing, once more when its pages disagree with each other.

use std::collections::HashSet;

use serde_json::Value;

use super::items::{KindRead, string_field, unusable};
use super::{CollectError, Result};
use crate::segment::SegmentClient;
use segwatch_core::model::{QUARANTINE_KEPT_PER_LISTING, ResourceKind};
use segwatch_core::redact::SecretPolicy;

/// A listing whose pages disagree with each other (an id on two pages, `totalEntries` moving,
/// a short page before the last) changed while it was read: it is read once more, and if the
/// second read disagrees too, the kind is incomplete for the poll (nothing of it removed).
pub(super) async fn list(
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
pub(super) async fn raw_list(
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
