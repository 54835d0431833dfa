-- Schema version 7: Segment's audit trail, and who made each change.
--
-- Events are appended, never edited: each is stored once per workspace, by the complete poll
-- that first read it, in that poll's transaction (a failed poll stores none, and the next one
-- reads again from the last complete poll's mark).

CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces(id),
    event_id       TEXT NOT NULL,                -- Segment's id, e.g. `events/145876976`
    occurred_at    TEXT NOT NULL,                -- the event's timestamp, RFC 3339 UTC with milliseconds
    type           TEXT NOT NULL,                -- e.g. `User Policy Updated`
    actor          TEXT NOT NULL,                -- a user id, or a token's id (`public-api-token/…`)
    actor_email    TEXT,                         -- `actorEmail`, or the email of the user `actor` names
    resource_id    TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_name  TEXT NOT NULL,
    body           TEXT NOT NULL,                -- the event as the API returned it (canonical JSON)
    snapshot_id    INTEGER NOT NULL REFERENCES snapshots(id) -- the poll that first read it
);
CREATE UNIQUE INDEX audit_events_once ON audit_events(workspace_id, event_id);
CREATE INDEX audit_events_by_time ON audit_events(workspace_id, occurred_at);
CREATE INDEX audit_events_by_resource ON audit_events(workspace_id, resource_id, occurred_at);

-- What each complete poll read of the audit trail, and its high-water mark: the latest event
-- timestamp read so far and the ids of the events at that instant. The next poll reads from
-- `mark_at` (inclusive) and skips those ids, so overlapping reads store nothing twice.
CREATE TABLE audit_reads (
    snapshot_id     INTEGER PRIMARY KEY REFERENCES snapshots(id),
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    start_time      TEXT NOT NULL,               -- the window read: `startTime` …
    end_time        TEXT NOT NULL,               -- … and `endTime`
    events_read     INTEGER NOT NULL,
    events_new      INTEGER NOT NULL,            -- of which stored by this poll
    mark_at         TEXT NOT NULL,
    mark_event_ids  TEXT NOT NULL                -- JSON array of strings
);
CREATE INDEX audit_reads_by_workspace ON audit_reads(workspace_id, snapshot_id);

-- Attribution: the latest audit event on the same resource between the two snapshots. NULL
-- when none matched (or the trail was not read).
ALTER TABLE changes ADD COLUMN actor TEXT;
ALTER TABLE changes ADD COLUMN actor_email TEXT;
ALTER TABLE changes ADD COLUMN event_type TEXT;
ALTER TABLE changes ADD COLUMN event_id TEXT;

-- The same on alerts: copied from their change (or, for an audit-event rule, their event).
ALTER TABLE alerts ADD COLUMN actor TEXT;
ALTER TABLE alerts ADD COLUMN actor_email TEXT;
ALTER TABLE alerts ADD COLUMN event_type TEXT;
ALTER TABLE alerts ADD COLUMN event_id TEXT;

-- Views: the new columns are appended; the rest is as in schema 4.

DROP VIEW audit_changes;
CREATE VIEW audit_changes AS
SELECT
    w.name AS workspace,
    c.id AS change_id,
    c.snapshot_id,
    s.finished_at AS observed_at,
    s.base_snapshot_id AS previous_snapshot_id,
    b.finished_at AS previous_observed_at,
    c.kind,
    c.resource_id,
    c.name,
    c.op,
    coalesce(json_array_length(c.fields), 0) AS field_count,
    c.fields,
    c.before_version_id,
    c.after_version_id,
    c.text_diff,
    c.actor,
    c.actor_email,
    c.event_type,
    c.event_id
FROM changes c
JOIN workspaces w ON w.id = c.workspace_id
JOIN snapshots s ON s.id = c.snapshot_id
LEFT JOIN snapshots b ON b.id = s.base_snapshot_id;

DROP VIEW audit_alerts;
CREATE VIEW audit_alerts AS
SELECT
    w.name AS workspace,
    a.id AS alert_id,
    a.rule_id,
    a.rule_kind,
    a.severity,
    CASE a.severity WHEN 'info' THEN 1 WHEN 'low' THEN 2 WHEN 'medium' THEN 3
        WHEN 'high' THEN 4 WHEN 'critical' THEN 5 END AS severity_rank,
    a.title,
    a.status,
    a.resolution,
    a.resource_kind,
    a.resource_id,
    a.resource_name,
    a.snapshot_id,
    o.finished_at AS opened_at,
    a.resolved_snapshot_id,
    r.finished_at AS resolved_at,
    CASE WHEN a.rule_kind = 'compliance' THEN
        CAST(round((julianday(coalesce(r.finished_at, 'now')) - julianday(o.finished_at)) * 86400) AS INTEGER)
    END AS age_s,
    a.change_id,
    a.summary,
    a.remediation,
    a.tags,
    a.explanation,
    a.actor,
    a.actor_email,
    a.event_type,
    a.event_id
FROM alerts a
JOIN workspaces w ON w.id = a.workspace_id
JOIN snapshots o ON o.id = a.snapshot_id
LEFT JOIN snapshots r ON r.id = a.resolved_snapshot_id;

-- The audit trail as read from Segment, one row per event, with the poll that stored it.
CREATE VIEW audit_events_log AS
SELECT
    w.name AS workspace,
    e.event_id,
    e.occurred_at,
    e.type AS event_type,
    e.actor,
    e.actor_email,
    e.resource_type,
    e.resource_id,
    e.resource_name,
    e.snapshot_id,
    s.finished_at AS observed_at,
    e.body
FROM audit_events e
JOIN workspaces w ON w.id = e.workspace_id
JOIN snapshots s ON s.id = e.snapshot_id;
