-- Schema version 11: API drift in the auditor views.
--
-- A field change that Segment's API made (a field a release started or stopped returning on
-- most resources of a kind, with nobody behind it) carries `"api_drift": true` in
-- `changes.fields`; other field changes carry nothing, so rows written before schema 11 read
-- and hash as they did. The two views of changes get an `api_drift` column (0/1), appended;
-- the rest is as in schemas 4 and 7.

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
    c.event_id,
    -- An API-drift change: modified, and every one of its fields is drift.
    CASE WHEN c.op = 'modified'
          AND coalesce(json_array_length(c.fields), 0) > 0
          AND NOT EXISTS (
              SELECT 1 FROM json_each(c.fields) d
              WHERE coalesce(json_extract(d.value, '$.api_drift'), 0) = 0
          )
    THEN 1 ELSE 0 END AS api_drift
FROM changes c
JOIN workspaces w ON w.id = c.workspace_id
JOIN snapshots s ON s.id = c.snapshot_id
LEFT JOIN snapshots b ON b.id = s.base_snapshot_id;

DROP VIEW audit_change_fields;
CREATE VIEW audit_change_fields AS
SELECT
    w.name AS workspace,
    c.id AS change_id,
    c.snapshot_id,
    s.finished_at AS observed_at,
    c.kind,
    c.resource_id,
    c.name,
    c.op,
    json_extract(f.value, '$.path') AS path,
    json_type(f.value, '$.old') AS old_type,
    json_extract(f.value, '$.old') AS old_value,
    json_type(f.value, '$.new') AS new_type,
    json_extract(f.value, '$.new') AS new_value,
    CASE WHEN json_extract(f.value, '$.api_drift') THEN 1 ELSE 0 END AS api_drift
FROM changes c
JOIN workspaces w ON w.id = c.workspace_id
JOIN snapshots s ON s.id = c.snapshot_id
JOIN json_each(c.fields) f;
