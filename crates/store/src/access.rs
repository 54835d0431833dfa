//! Effective-access changes (`access_changes`, schema 14): written with their snapshot, read
//! back by auditors and by access reviews.

use rusqlite::{Transaction, params};

use segwatch_core::access::{AttributedAccessChange, ChangeKind, Via, label_strings};

use crate::Result;

/// Writes a snapshot's access changes; `change_ids` are the row ids of its changes, in order
/// (an access change names the change that caused it by position). Records, once per
/// workspace, the snapshot from which its access changes are tracked: the base (whose access
/// this one was diffed against), or this snapshot for a baseline.
pub(crate) fn write_access_changes(
    tx: &Transaction<'_>,
    workspace_id: i64,
    snapshot_id: i64,
    base: Option<i64>,
    changes: impl Iterator<Item = AttributedAccessChange>,
    change_ids: &[i64],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO access_tracking (workspace_id, since_snapshot_id) VALUES (?1, ?2)",
    )?
    .execute(params![workspace_id, base.unwrap_or(snapshot_id)])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO access_changes (snapshot_id, workspace_id, op, user_id, email, invite,
            resource_type, resource_id, resource_name, role_id, role_name, via_group_id,
            via_group_name, label_filter, cause_kind, cause_id, cause_change_id,
            actor, actor_email, event_type, event_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21)",
    )?;
    for a in changes {
        let a = &a;
        let g = &a.change.grant;
        let (via_id, via_name) = match &g.via {
            Via::Direct => (None, None),
            Via::Group { id, name } => (Some(id.as_str()), Some(name.as_str())),
        };
        let filter = (!g.label_filter.is_empty()).then(|| {
            serde_json::to_string(&label_strings(&g.label_filter)).expect("strings serialise")
        });
        let at = &a.attribution;
        insert.execute(params![
            snapshot_id,
            workspace_id,
            match a.change.change {
                ChangeKind::Added => "added",
                ChangeKind::Removed => "removed",
            },
            g.user.id,
            g.user.email,
            g.invite,
            g.resource.kind,
            g.resource.id,
            g.resource.name,
            g.role_id,
            g.role_name,
            via_id,
            via_name,
            filter,
            a.change.cause.kind.as_str(),
            a.change.cause.id,
            a.cause_change.and_then(|i| change_ids.get(i)),
            at.actor,
            at.actor_email,
            at.event_type,
            at.event_id
        ])?;
    }
    Ok(())
}
