-- Schema version 3: the delivery outbox.

-- One row per (sink, alert, event): created in the same transaction as the alert (or its
-- resolution), so no alert is lost; marked `sent` only after the sink confirmed, so a crash
-- mid-send re-sends (at least once). `failed` rows are retried at `next_attempt_at`; `dead`
-- ones gave up (after the last attempt, or at once on a permanent error) and keep the error.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    sink             TEXT NOT NULL,
    snapshot_id      INTEGER NOT NULL REFERENCES snapshots(id),   -- the poll that queued it
    alert_id         INTEGER NOT NULL REFERENCES alerts(id),
    event            TEXT NOT NULL CHECK (event IN ('raised', 'resolved')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE UNIQUE INDEX deliveries_once ON deliveries(sink, alert_id, event);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
