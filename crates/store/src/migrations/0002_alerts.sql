-- Schema version 2: alerts raised by rules, and what each rule last evaluated.

-- One row per change alert (status `fired`) or compliance finding (`open` until `resolved`).
-- A finding that regresses after being resolved is a new row, so history is kept. Rule text
-- (title, remediation, tags) is copied so an alert stays readable after its rule changes.
CREATE TABLE alerts (
    id                    INTEGER PRIMARY KEY,
    workspace_id          INTEGER NOT NULL REFERENCES workspaces(id),
    rule_id               TEXT NOT NULL,
    rule_kind             TEXT NOT NULL CHECK (rule_kind IN ('change', 'compliance')),
    severity              TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    title                 TEXT NOT NULL,
    resource_kind         TEXT NOT NULL,
    resource_id           TEXT NOT NULL,
    resource_name         TEXT NOT NULL,
    snapshot_id           INTEGER NOT NULL REFERENCES snapshots(id),   -- the snapshot that raised it
    change_id             INTEGER REFERENCES changes(id),              -- change alerts: the change
    status                TEXT NOT NULL CHECK (status IN ('fired', 'open', 'resolved')),
    opened_at             TEXT NOT NULL,
    resolved_at           TEXT,
    resolved_snapshot_id  INTEGER REFERENCES snapshots(id),
    resolution            TEXT CHECK (resolution IN ('compliant', 'removed', 'exempted', 'rule_changed', 'rule_removed')),
    summary               TEXT NOT NULL,
    explanation           TEXT NOT NULL,                               -- JSON: what the condition read
    remediation           TEXT NOT NULL,
    tags                  TEXT NOT NULL                                -- JSON array of strings
);
-- Deduplication: one open finding per rule and resource, one alert per rule and change.
CREATE UNIQUE INDEX alerts_one_open_finding ON alerts(workspace_id, rule_id, resource_kind, resource_id)
    WHERE status = 'open';
CREATE UNIQUE INDEX alerts_one_per_change ON alerts(rule_id, change_id) WHERE change_id IS NOT NULL;
CREATE INDEX alerts_by_status ON alerts(workspace_id, status, id);

-- The fingerprint of each rule as last evaluated: a compliance rule whose fingerprint is
-- unchanged is only re-evaluated on resources that changed.
CREATE TABLE rule_state (
    workspace_id           INTEGER NOT NULL REFERENCES workspaces(id),
    rule_id                TEXT NOT NULL,
    fingerprint            TEXT NOT NULL,
    evaluated_snapshot_id  INTEGER NOT NULL REFERENCES snapshots(id),
    PRIMARY KEY (workspace_id, rule_id)
);
