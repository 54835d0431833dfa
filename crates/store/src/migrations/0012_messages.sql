-- Schema: bounded messages. A delivery may now be `summarised`: its alert was counted, not
-- listed, in the summary message that ends a sink's run once the sink's `max_messages_per_run`
-- is reached (see src/sinks/outbox.rs). The alert stays stored and listed by `segwatch alerts`.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt (same columns,
-- same ids) and the view and indexes that use it are recreated unchanged.

DROP VIEW audit_deliveries;

CREATE TABLE deliveries_new (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    sink             TEXT NOT NULL,
    snapshot_id      INTEGER NOT NULL REFERENCES snapshots(id),   -- the poll that queued it
    alert_id         INTEGER NOT NULL REFERENCES alerts(id),
    event            TEXT NOT NULL CHECK (event IN ('raised', 'resolved')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'sent', 'summarised', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
INSERT INTO deliveries_new
    (id, workspace_id, sink, snapshot_id, alert_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at)
SELECT id, workspace_id, sink, snapshot_id, alert_id, event, status, attempts, next_attempt_at, last_error, created_at, sent_at
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE UNIQUE INDEX deliveries_once ON deliveries(sink, alert_id, event);
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
