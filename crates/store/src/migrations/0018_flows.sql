-- The data-flow map for auditors: `audit_data_flows`, one row per way a source's data takes
-- (a destination fed by it, a warehouse syncing it) over the time both ends held that state,
-- documented in docs/SCHEMA.md and docs/FLOWS.md. A view only; SQL that SQLite 3.31 parses.
-- (Numbered 0018 so that it lands after the collected kinds of issue 17; it only reads
-- `resource_versions`, `snapshots` and `workspaces`, so its place in the list does not matter.)

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
    f.target_kind AS via,
    json_extract(f.target_body, '$.enabled') AS target_enabled,
    CASE WHEN coalesce(json_extract(f.target_body, '$.enabled'), 1)
              AND coalesce(json_extract(f.source_body, '$.enabled'), 1)
         THEN 1 ELSE 0 END AS enabled,
    CAST(NULL AS TEXT) AS personal_fields,
    f.from_id AS valid_from_snapshot_id,
    a.finished_at AS valid_from_at,
    f.to_id AS valid_to_snapshot_id,
    b.finished_at AS valid_to_at
FROM flows f
JOIN workspaces w ON w.id = f.workspace_id
JOIN snapshots a ON a.id = f.from_id
LEFT JOIN snapshots b ON b.id = f.to_id;
