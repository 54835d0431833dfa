//! Sealing: each complete snapshot hashed into its workspace's chain inside its commit
//! transaction, and the backfill of the snapshots that predate the chain.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::{Source, content_of, genesis, link_hash, previous_link, workspace_name};
use crate::{Result, now};

/// Hashes a just-completed snapshot into its workspace's chain. Call inside the transaction
/// that wrote it, after every row of it is written and its status is `complete`. Returns the
/// chain hash.
pub(crate) fn seal(conn: &Connection, workspace_id: i64, snapshot_id: i64) -> Result<String> {
    let content = content_of(conn, snapshot_id, Source::Snapshot)?;
    let previous = match previous_link(conn, workspace_id, snapshot_id)? {
        Some((_, Some(hash))) => hash,
        Some((id, None)) => {
            // Refusing to commit would let whoever broke the chain stop the monitoring; the
            // break stays visible to `segwatch verify` at snapshot `id`.
            tracing::error!(
                snapshot = id,
                "the previous complete snapshot has no chain hash; the chain is broken there (run `segwatch verify`)"
            );
            String::new()
        }
        None => genesis(&workspace_name(conn, workspace_id)?),
    };
    let chain = link_hash(&previous, &content.hash);
    conn.prepare_cached(
        "UPDATE snapshots SET content_manifest = ?2, content_hash = ?3, chain_hash = ?4 WHERE id = ?1",
    )?
    .execute(params![snapshot_id, content.manifest, content.hash, chain])?;
    Ok(chain)
}

/// Hashes, in order, the complete snapshots that existed before the chain (called by the
/// migration that introduces it, in its transaction) and records the backfill per workspace.
pub(crate) fn backfill(conn: &Connection) -> Result<()> {
    let at = now();
    let mut by_workspace: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT workspace_id, id FROM snapshots
             WHERE status = 'complete' AND chain_hash IS NULL ORDER BY workspace_id, id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (workspace, id) = row?;
            by_workspace.entry(workspace).or_default().push(id);
        }
    }
    for (workspace, ids) in by_workspace {
        for &id in &ids {
            seal(conn, workspace, id)?;
        }
        conn.execute(
            "INSERT INTO chain_backfills (workspace_id, through_snapshot_id, snapshots, backfilled_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![workspace, ids.last(), ids.len() as i64, at],
        )?;
        tracing::info!(
            workspace,
            snapshots = ids.len(),
            "hashed the existing snapshots into the tamper-evidence chain"
        );
    }
    Ok(())
}
