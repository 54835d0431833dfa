-- The way each data flow takes and the personal fields it carries, computed at poll time with
-- the configured `[flows] personal_field_patterns` (docs/FLOWS.md), so that `audit_data_flows`
-- can say them in SQL. A row holds one flow's facts from the snapshot that first saw them
-- (`valid_from`) until the one that saw them change or the flow go (`valid_to`): the table grows
-- with changes, not with polls. Rows are sealed in their snapshot's chain link (parts `flow_fields` and
-- `flow_fields_closed`).

CREATE TABLE flow_personal_fields (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    source_id     TEXT NOT NULL,
    target_kind   TEXT NOT NULL CHECK (target_kind IN ('destination', 'warehouse')),
    target_id     TEXT NOT NULL,
    via           TEXT NOT NULL,                 -- e.g. `destination`, `reverse ETL model NAME`
    fields        TEXT NOT NULL,                 -- JSON array of field names, sorted
    valid_from    INTEGER NOT NULL REFERENCES snapshots(id),
    valid_to      INTEGER REFERENCES snapshots(id)
);
CREATE INDEX flow_personal_fields_flow
    ON flow_personal_fields(workspace_id, source_id, target_kind, target_id, valid_from);
CREATE INDEX flow_personal_fields_open ON flow_personal_fields(workspace_id) WHERE valid_to IS NULL;
CREATE INDEX flow_personal_fields_to ON flow_personal_fields(valid_to);
-- The chain seals each snapshot's rows, and retention asks whether a snapshot wrote any.
CREATE INDEX flow_personal_fields_from ON flow_personal_fields(valid_from);

-- From which snapshot a workspace's flow fields are computed, and with which patterns (one per
-- line) the rows in force were matched.
CREATE TABLE flow_fields_tracking (
    workspace_id       INTEGER PRIMARY KEY REFERENCES workspaces(id),
    since_snapshot_id  INTEGER NOT NULL REFERENCES snapshots(id),
    patterns           TEXT NOT NULL
);

DROP VIEW audit_data_flows;

-- One row per way a source's data takes over the time both ends and its personal fields held
-- that state. Before the workspace's fields were first computed, `personal_fields` is NULL.
CREATE VIEW audit_data_flows AS
WITH edges(workspace_id, target_kind, target_id, target_name, target_body, source_id,
           valid_from, valid_to) AS (
    SELECT v.workspace_id, 'destination', v.resource_id, v.name, v.body,
           json_extract(v.body, '$.sourceId'), v.valid_from, v.valid_to
    FROM resource_versions v
    WHERE v.kind = 'destination' AND json_extract(v.body, '$.sourceId') IS NOT NULL
    UNION ALL
    SELECT v.workspace_id, 'warehouse', v.resource_id, v.name, v.body, c.value,
           v.valid_from, v.valid_to
    FROM resource_versions v, json_each(v.body, '$.connectedSourceIds') c
    WHERE v.kind = 'warehouse'
),
flows AS (
    SELECT e.*, s.name AS source_name, s.body AS source_body,
           CASE WHEN s.valid_from IS NOT NULL AND s.valid_from > e.valid_from
                THEN s.valid_from ELSE e.valid_from END AS from_id,
           CASE WHEN e.valid_to IS NULL THEN s.valid_to
                WHEN s.valid_to IS NULL THEN e.valid_to
                WHEN s.valid_to < e.valid_to THEN s.valid_to
                ELSE e.valid_to END AS to_id,
           (SELECT json_extract(l.value, '$.value') FROM json_each(s.body, '$.labels') l
             WHERE json_extract(l.value, '$.key') = 'environment' LIMIT 1) AS environment
    FROM edges e
    LEFT JOIN resource_versions s
      ON s.workspace_id = e.workspace_id AND s.kind = 'source' AND s.resource_id = e.source_id
     AND (e.valid_to IS NULL OR s.valid_from < e.valid_to)
     AND (s.valid_to IS NULL OR e.valid_from < s.valid_to)
),
-- Each flow's time cut by its fields' rows (from the first computation on) ...
tracked AS (
    SELECT f.*, p.via AS flow_via, p.fields AS personal_fields,
           CASE WHEN p.valid_from > f.from_id THEN p.valid_from ELSE f.from_id END AS part_from,
           CASE WHEN f.to_id IS NULL THEN p.valid_to
                WHEN p.valid_to IS NULL THEN f.to_id
                WHEN p.valid_to < f.to_id THEN p.valid_to
                ELSE f.to_id END AS part_to
    FROM flows f
    JOIN flow_personal_fields p
      ON p.workspace_id = f.workspace_id AND p.source_id = f.source_id
     AND p.target_kind = f.target_kind AND p.target_id = f.target_id
     AND (f.to_id IS NULL OR p.valid_from < f.to_id)
     AND (p.valid_to IS NULL OR f.from_id < p.valid_to)
),
-- ... and its time before that, with the fields unknown.
untracked AS (
    SELECT f.*, f.target_kind AS flow_via, CAST(NULL AS TEXT) AS personal_fields,
           f.from_id AS part_from,
           CASE WHEN t.since_snapshot_id IS NULL THEN f.to_id
                WHEN f.to_id IS NULL OR t.since_snapshot_id < f.to_id THEN t.since_snapshot_id
                ELSE f.to_id END AS part_to
    FROM flows f
    LEFT JOIN flow_fields_tracking t ON t.workspace_id = f.workspace_id
    WHERE t.since_snapshot_id IS NULL OR f.from_id < t.since_snapshot_id
),
parts AS (
    SELECT * FROM tracked
    UNION ALL
    SELECT * FROM untracked
)
SELECT
    w.name AS workspace,
    f.source_id,
    f.source_name,
    f.environment AS source_environment,
    CASE WHEN lower(f.environment) IN ('prod', 'production') THEN 1 ELSE 0 END
        AS source_production,
    json_extract(f.source_body, '$.enabled') AS source_enabled,
    f.target_kind,
    f.target_id,
    f.target_name,
    f.flow_via AS via,
    json_extract(f.target_body, '$.enabled') AS target_enabled,
    CASE WHEN coalesce(json_extract(f.target_body, '$.enabled'), 1)
              AND coalesce(json_extract(f.source_body, '$.enabled'), 1)
         THEN 1 ELSE 0 END AS enabled,
    f.personal_fields,
    f.part_from AS valid_from_snapshot_id,
    a.finished_at AS valid_from_at,
    f.part_to AS valid_to_snapshot_id,
    b.finished_at AS valid_to_at
FROM parts f
JOIN workspaces w ON w.id = f.workspace_id
JOIN snapshots a ON a.id = f.part_from
LEFT JOIN snapshots b ON b.id = f.part_to;
