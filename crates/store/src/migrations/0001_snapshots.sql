-- Schema version 1: workspaces, polls (snapshots), resource versions and changes.
-- Timestamps are RFC 3339 UTC strings with milliseconds, so they sort as text.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,          -- the label from configuration
    segment_id  TEXT,                          -- Segment's workspace id, once seen
    created_at  TEXT NOT NULL
);

-- One row per poll. Only `complete` snapshots are ever used as a diff base or reconstructed.
CREATE TABLE snapshots (
    id                INTEGER PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id),
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    status            TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    error             TEXT,                    -- why a failed poll failed
    base_snapshot_id  INTEGER REFERENCES snapshots(id), -- the complete snapshot it was diffed against
    resource_count    INTEGER,
    added             INTEGER,
    removed           INTEGER,
    modified          INTEGER,
    api_requests      INTEGER,
    duration_ms       INTEGER
);
CREATE INDEX snapshots_by_workspace ON snapshots(workspace_id, status, id);

-- Each distinct content of a resource, valid from the snapshot that first saw it until (not
-- including) `valid_to`, the first complete snapshot that saw it changed or gone. An unchanged
-- resource adds no row, so storage grows with changes, not with polls.
CREATE TABLE resource_versions (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    kind          TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,               -- hex SHA-256 of body
    body          TEXT NOT NULL,               -- canonical JSON, secrets fingerprinted
    valid_from    INTEGER NOT NULL REFERENCES snapshots(id),
    valid_to      INTEGER REFERENCES snapshots(id)
);
CREATE INDEX resource_versions_by_resource ON resource_versions(workspace_id, kind, resource_id, valid_from);
CREATE UNIQUE INDEX resource_versions_current ON resource_versions(workspace_id, kind, resource_id)
    WHERE valid_to IS NULL;

-- One row per resource added, removed or modified between a snapshot and its base.
CREATE TABLE changes (
    id                 INTEGER PRIMARY KEY,
    snapshot_id        INTEGER NOT NULL REFERENCES snapshots(id),
    workspace_id       INTEGER NOT NULL REFERENCES workspaces(id),
    kind               TEXT NOT NULL,
    resource_id        TEXT NOT NULL,
    name               TEXT NOT NULL,
    op                 TEXT NOT NULL CHECK (op IN ('added', 'removed', 'modified')),
    before_version_id  INTEGER REFERENCES resource_versions(id),
    after_version_id   INTEGER REFERENCES resource_versions(id),
    fields             TEXT NOT NULL,          -- JSON array of {path, old?, new?}
    text_diff          TEXT NOT NULL           -- unified diff of the two versions
);
CREATE INDEX changes_by_snapshot ON changes(snapshot_id);
CREATE INDEX changes_by_resource ON changes(workspace_id, kind, resource_id);
