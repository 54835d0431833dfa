-- Schema: finding updates. An open finding whose resource a poll changed, and that still fails
-- its rule, stays open (no new alert) and gets an `alert_updates` row: the rule's summary and
-- explanation as of the change, and who made it. Sinks that track findings are sent it as a
-- delivery of event `updated` (`update_id` names the row).
--
-- SQLite cannot change a CHECK constraint in place, so `deliveries` is rebuilt as in schema 12
-- (same columns plus `update_id`, same ids) and the view and indexes that use it are recreated.

CREATE TABLE alert_updates (
    id            INTEGER PRIMARY KEY,
    alert_id      INTEGER NOT NULL REFERENCES alerts(id),
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    snapshot_id   INTEGER NOT NULL REFERENCES snapshots(id),   -- the poll that saw the change
    change_id     INTEGER REFERENCES changes(id),
    summary       TEXT NOT NULL,
    explanation   TEXT NOT NULL,                                -- JSON
    actor         TEXT,
    actor_email   TEXT,
    event_type    TEXT,
    event_id      TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX alert_updates_alert ON alert_updates(alert_id);
CREATE INDEX alert_updates_snapshot ON alert_updates(snapshot_id);
-- `export ocsf --since` reads a workspace's updates by time.
CREATE INDEX alert_updates_created ON alert_updates(workspace_id, created_at);

DROP VIEW audit_deliveries;

CREATE TABLE deliveries_new (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    sink             TEXT NOT NULL,
    snapshot_id      INTEGER NOT NULL REFERENCES snapshots(id),   -- the poll that queued it
    alert_id         INTEGER NOT NULL REFERENCES alerts(id),
    event            TEXT NOT NULL CHECK (event IN ('raised', 'resolved', 'updated')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'sent', 'summarised', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT,
    update_id        INTEGER REFERENCES alert_updates(id)         -- set for event `updated`
);
INSERT INTO deliveries_new
    (id, workspace_id, sink, snapshot_id, alert_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at)
SELECT id, workspace_id, sink, snapshot_id, alert_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE UNIQUE INDEX deliveries_once ON deliveries(sink, alert_id, event, COALESCE(update_id, 0));
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);

-- Deliveries of alerts to sinks (the outbox).
CREATE VIEW audit_deliveries AS
SELECT
    w.name AS workspace,
    d.id AS delivery_id,
    d.alert_id,
    d.sink,
    d.event,
    d.status,
    d.attempts,
    d.created_at,
    d.sent_at,
    d.next_attempt_at,
    d.last_error
FROM deliveries d
JOIN workspaces w ON w.id = d.workspace_id;
