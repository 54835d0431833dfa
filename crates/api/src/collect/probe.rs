//! Probing which lists a workspace offers, one item each, for `check-connection`.

use super::CollectOptions;
use crate::segment::SegmentClient;
use segwatch_core::model::ResourceKind;

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
    let lists: [List; 13] = [
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
            K::Transformation,
            "transformation",
            "/transformations",
            "transformations",
            vec![],
        ),
        (
            K::ReverseEtlModel,
            "reverse_etl_model",
            "/reverse-etl-models",
            "models",
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
            // An API older than reverse ETL answers as a poll reads it: the kind unavailable.
            Err(e)
                if kind == K::ReverseEtlModel && super::controls::lacks_reverse_etl(e.status()) =>
            {
                Probe::Unavailable(e.status().unwrap_or_default(), e.to_string())
            }
            Err(e) => refused_or_failed(&e),
        };
        out.push((name, probe));
    }
    // The kinds read per destination or per source: their endpoint for the first one listed.
    for (kind, name) in [
        (K::DestinationFilter, "destination_filter"),
        (K::DestinationSubscription, "destination_subscription"),
        (K::SourceSchemaSettings, "source_schema_settings"),
    ] {
        if !options.collects(kind) {
            continue;
        }
        let layout = super::controls::per_parent(kind).expect("a kind read per parent");
        let (parents, parents_key) = layout.parents;
        let probe = match client.pages(parents, parents_key).next_page().await {
            Err(e) => refused_or_failed(&e),
            Ok(page) => match page
                .unwrap_or_default()
                .first()
                .and_then(|p| p.get("id"))
                .and_then(|id| id.as_str())
            {
                // Nothing to read it for: the feature cannot be told apart yet.
                None => Probe::Readable,
                Some(id) => {
                    let (before, after, items) = layout.children;
                    let path = format!("{before}{}{after}", super::kinds::encode_segment(id));
                    let read = match items {
                        Some(items) => client.pages(&path, items).next_page().await.map(|_| ()),
                        None => client.get_object(&path, "settings").await.map(|_| ()),
                    };
                    match read {
                        Ok(()) => Probe::Readable,
                        Err(e) => refused_or_failed(&e),
                    }
                }
            },
        };
        out.push((name, probe));
    }
    out
}

fn refused_or_failed(e: &crate::segment::SegmentError) -> Probe {
    match e.refusal() {
        Some((status, reason)) => Probe::Unavailable(status, reason),
        None => Probe::Failed(e.to_string()),
    }
}
