//! Helpers shared by the unit tests: resources and the store half of a poll.

use std::time::Duration;

use serde_json::json;

use crate::{CommitTarget, PollStats, Result, Store};
use segwatch_core::alerts::AlertPlan;
use segwatch_core::diff::plan;
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::{Resource, ResourceKind};

pub(crate) fn user(id: &str, role: &str) -> Resource {
    Resource::new(
        ResourceKind::User,
        id.into(),
        format!("{id}@acme.io"),
        json!({"id": id, "email": format!("{id}@acme.io"), "permissions": [{"roleId": role, "roleName": role, "resources": []}]}),
    )
}

pub(crate) fn stats(n: usize) -> PollStats {
    PollStats {
        resource_count: n,
        api_requests: 1,
        duration: Duration::from_millis(5),
    }
}

/// Runs the store half of a poll, as `poll::Poller` does.
pub(crate) fn commit(
    store: &mut Store,
    ws: i64,
    resources: &[Resource],
) -> Result<(SnapshotId, usize)> {
    commit_with(store, ws, resources, &AlertPlan::default())
}

/// [`commit`] with the alerts the rules would have planned.
pub(crate) fn commit_with(
    store: &mut Store,
    ws: i64,
    resources: &[Resource],
    alerts: &AlertPlan,
) -> Result<(SnapshotId, usize)> {
    let id = store.begin_snapshot(ws)?;
    let base = store.latest_complete(ws)?;
    let current = store.current_versions(ws)?;
    let delta = plan(resources, &current, base.is_none(), |v| {
        store.version_value(v)
    })?;
    let n = delta.changes.len();
    let target = CommitTarget {
        workspace_id: ws,
        snapshot_id: id,
        base,
        segment_workspace_id: "seg-ws",
        stats: stats(resources.len()),
        trail: None,
        kinds: &ResourceKind::ALL,
        kind_status: &Default::default(),
        confirm_requests: 0,
        quarantine: &[],
        access: None,
        flow_fields: None,
    };
    store.commit_snapshot(&target, &delta, alerts)?;
    Ok((id, n))
}

pub(crate) fn count(store: &Store, table: &str) -> i64 {
    store
        .connection()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn delivery_statuses_read_back_as_stored() {
    use crate::DeliveryStatus;
    for status in DeliveryStatus::ALL {
        assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        assert_eq!(
            format!("{status:<11}|"),
            format!("{:<11}|", status.as_str())
        );
    }
    assert!("delivered".parse::<DeliveryStatus>().is_err());
}
