-- Schema version 10: what a poll could not read, and what it could not understand.
--
-- `kind_status` is NULL when the poll read every kind it collects in full. Otherwise it is a
-- JSON object keyed by kind name, e.g.
--   {"group": {"status": "unavailable", "http_status": 403, "reason": "…", "carried": true},
--    "user":  {"status": "incomplete", "reason": "1 item quarantined (no usable `id`)"}}
-- `unavailable`: the kind's list endpoint answered 403/404 (a feature the plan or token lacks);
-- its stored versions were neither closed nor changed (`carried` when there were any).
-- `incomplete`: the kind was read but some items could not be identified; versions of it that
-- this poll did not see were kept, not recorded as removed.
ALTER TABLE snapshots ADD COLUMN kind_status TEXT;
-- Extra requests this poll spent confirming that resources missing from a list were really
-- gone (GET by id, or a second read of a list); NULL before schema 10.
ALTER TABLE snapshots ADD COLUMN confirm_requests INTEGER;

-- Items from the API that segwatch could not understand, kept as received (secret-looking
-- fields fingerprinted, at most 64 KiB) with the reason. Written with the snapshot that first read
-- them; a later poll that reads the same item again stores nothing new.
CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    snapshot_id  INTEGER NOT NULL REFERENCES snapshots(id),
    kind         TEXT NOT NULL,      -- resource kind, or audit_event
    path         TEXT NOT NULL,      -- the request path the item came from
    position     INTEGER NOT NULL,   -- its index in that listing
    reason       TEXT NOT NULL,
    raw          TEXT NOT NULL,      -- the item as JSON text
    truncated    INTEGER NOT NULL DEFAULT 0,
    raw_sha256   TEXT NOT NULL       -- of the whole item: one bad item read again is stored once
);
CREATE INDEX quarantine_by_snapshot ON quarantine(workspace_id, snapshot_id);
CREATE UNIQUE INDEX quarantine_once ON quarantine(workspace_id, kind, raw_sha256);

-- audit_polls gains what each poll could not read; same columns before them.
DROP VIEW audit_polls;
CREATE VIEW audit_polls AS
SELECT
    w.name AS workspace,
    s.id AS snapshot_id,
    s.status,
    s.started_at,
    s.finished_at,
    CASE WHEN s.status = 'complete' THEN s.finished_at END AS observed_at,
    CASE WHEN s.status = 'complete' AND s.base_snapshot_id IS NULL THEN 1 ELSE 0 END AS is_baseline,
    s.base_snapshot_id,
    s.resource_count,
    s.added,
    s.removed,
    s.modified,
    s.api_requests,
    s.duration_ms,
    s.error,
    s.kind_status AS kinds_not_read,
    s.confirm_requests
FROM snapshots s
JOIN workspaces w ON w.id = s.workspace_id;

-- One row per item segwatch could not understand, with the poll that first read it.
CREATE VIEW audit_quarantine AS
SELECT
    w.name AS workspace,
    q.snapshot_id,
    s.started_at AS read_at,
    q.kind,
    q.path,
    q.position,
    q.reason,
    q.raw,
    q.truncated
FROM quarantine q
JOIN workspaces w ON w.id = q.workspace_id
JOIN snapshots s ON s.id = q.snapshot_id;
