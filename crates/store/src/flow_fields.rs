//! The personal fields of each data flow (`flow_personal_fields`, schema 19): read before a
//! poll, written with its snapshot, read by the `audit_data_flows` view.

use rusqlite::{OptionalExtension, Transaction, params};

use segwatch_core::flows::stored::{
    FlowFacts, FlowFieldsUpdate, OpenFlowFields, TrackedFlowFields,
};

use crate::{Result, Store};

impl Store {
    /// The workspace's flow fields in force and the patterns they were matched with; `None`
    /// before they were first computed.
    pub fn tracked_flow_fields(&self, workspace_id: i64) -> Result<Option<TrackedFlowFields>> {
        let Some(patterns) = self.flow_field_patterns(workspace_id)? else {
            return Ok(None);
        };
        Ok(Some(TrackedFlowFields {
            patterns,
            open: self.open_flow_fields(workspace_id)?,
        }))
    }

    /// The patterns the workspace's flow fields in force were matched with; `None` before they
    /// were first computed.
    pub fn flow_field_patterns(&self, workspace_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT patterns FROM flow_fields_tracking WHERE workspace_id = ?1",
                [workspace_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The workspace's flow-field rows in force.
    fn open_flow_fields(&self, workspace_id: i64) -> Result<Vec<OpenFlowFields>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, source_id, target_kind, target_id, fields, via FROM flow_personal_fields
             WHERE workspace_id = ?1 AND valid_to IS NULL ORDER BY id",
        )?;
        let open = stmt
            .query_map([workspace_id], |r| {
                let fields: String = r.get(4)?;
                Ok(OpenFlowFields {
                    id: r.get(0)?,
                    key: (r.get(1)?, r.get(2)?, r.get(3)?),
                    facts: FlowFacts {
                        via: r.get(5)?,
                        fields: serde_json::from_str(&fields).map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                4,
                                rusqlite::types::Type::Text,
                                e.into(),
                            )
                        })?,
                    },
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(open)
    }
}

/// Writes what a snapshot changed of its flows' fields, and records the patterns (and, the
/// first time, the snapshot from which they are tracked).
pub(crate) fn write_flow_fields(
    tx: &Transaction<'_>,
    workspace_id: i64,
    snapshot_id: i64,
    update: &FlowFieldsUpdate,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO flow_fields_tracking (workspace_id, since_snapshot_id, patterns)
         VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace_id) DO UPDATE SET patterns = excluded.patterns
         WHERE patterns IS NOT excluded.patterns",
    )?
    .execute(params![workspace_id, snapshot_id, update.patterns])?;
    let mut close = tx.prepare_cached(
        "UPDATE flow_personal_fields SET valid_to = ?2
         WHERE id = ?1 AND workspace_id = ?3 AND valid_to IS NULL",
    )?;
    for id in &update.close {
        close.execute(params![id, snapshot_id, workspace_id])?;
    }
    let mut open = tx.prepare_cached(
        "INSERT INTO flow_personal_fields (workspace_id, source_id, target_kind, target_id,
            via, fields, valid_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for ((source, kind, target), facts) in &update.open {
        let fields = serde_json::to_string(&facts.fields).expect("strings serialise");
        open.execute(params![
            workspace_id,
            source,
            kind,
            target,
            facts.via,
            fields,
            snapshot_id
        ])?;
    }
    Ok(())
}
