-- Tamper evidence (see src/store/chain.rs and docs/EVIDENCE.md). Every complete snapshot records
-- the SHA-256 of its content and a chain hash linking it to the previous complete snapshot of its
-- workspace. Running and failed snapshots are not in the chain: they hold no content.

ALTER TABLE snapshots ADD COLUMN content_manifest TEXT;  -- per content part: rows and SHA-256
ALTER TABLE snapshots ADD COLUMN content_hash TEXT;      -- SHA-256 of content_manifest
ALTER TABLE snapshots ADD COLUMN chain_hash TEXT;        -- SHA-256 of the previous link and content_hash

-- A quiet complete snapshot (no versions, changes or alerts reference it) deleted by retention
-- leaves this tombstone. Its content was its row alone, so the row's hashed columns are kept and
-- the link still verifies; a tombstone cannot stand for a snapshot that held anything.
CREATE TABLE pruned_snapshots (
    id              INTEGER PRIMARY KEY,                 -- the deleted snapshot's id
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    resource_count  INTEGER NOT NULL,
    chain_hash      TEXT NOT NULL,
    pruned_at       TEXT NOT NULL
);
CREATE INDEX pruned_snapshots_by_workspace ON pruned_snapshots(workspace_id, id);

-- Complete snapshots that existed before the chain were hashed when it was introduced (in this
-- migration's transaction): they are vouched for only from `backfilled_at` on.
CREATE TABLE chain_backfills (
    workspace_id         INTEGER PRIMARY KEY REFERENCES workspaces(id),
    through_snapshot_id  INTEGER NOT NULL,
    snapshots            INTEGER NOT NULL,
    backfilled_at        TEXT NOT NULL
);

-- A snapshot's content is read back by snapshot, at every commit and by `segwatch verify`.
CREATE INDEX resource_versions_by_valid_from ON resource_versions(valid_from);
CREATE INDEX resource_versions_by_valid_to ON resource_versions(valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX alerts_by_snapshot ON alerts(snapshot_id);
CREATE INDEX alerts_by_resolved_snapshot ON alerts(resolved_snapshot_id)
    WHERE resolved_snapshot_id IS NOT NULL;
