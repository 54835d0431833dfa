-- Schema 6: auditor views of where data leaves the workspace (destinations, warehouses,
-- functions, tracking plans) and of the relationships between resources, documented in
-- docs/SCHEMA.md. Same conventions as schema 4: views only, SQL that SQLite 3.31 parses.

CREATE VIEW audit_current_destinations AS
SELECT
    w.name AS workspace,
    v.resource_id AS destination_id,
    v.name,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.sourceId') AS source_id,
    (SELECT s.name FROM resource_versions s
      WHERE s.workspace_id = v.workspace_id AND s.kind = 'source' AND s.valid_to IS NULL
        AND s.resource_id = json_extract(v.body, '$.sourceId')) AS source_name,
    (SELECT json_extract(l.value, '$.value')
       FROM resource_versions s, json_each(s.body, '$.labels') l
      WHERE s.workspace_id = v.workspace_id AND s.kind = 'source' AND s.valid_to IS NULL
        AND s.resource_id = json_extract(v.body, '$.sourceId')
        AND json_extract(l.value, '$.key') = 'environment' LIMIT 1) AS source_environment,
    json_extract(v.body, '$.metadata.name') AS catalog_name,
    json_extract(v.body, '$.metadata.slug') AS catalog_slug,
    (SELECT group_concat(key, ', ') FROM (
        SELECT s.key FROM json_each(v.body, '$.settings') s ORDER BY 1)) AS setting_keys,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'destination' AND v.valid_to IS NULL;

CREATE VIEW audit_current_warehouses AS
SELECT
    w.name AS workspace,
    v.resource_id AS warehouse_id,
    v.name,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.metadata.name') AS catalog_name,
    json_extract(v.body, '$.metadata.slug') AS catalog_slug,
    coalesce(json_extract(v.body, '$.settings.host'), json_extract(v.body, '$.settings.hostname'),
             json_extract(v.body, '$.settings.account'), json_extract(v.body, '$.settings.project'))
        AS host,
    json_extract(v.body, '$.settings.database') AS database,
    coalesce(json_extract(v.body, '$.settings.username'), json_extract(v.body, '$.settings.user'))
        AS username,
    coalesce(json_array_length(v.body, '$.connectedSourceIds'), 0) AS source_count,
    (SELECT group_concat(id, ', ') FROM (
        SELECT s.value AS id FROM json_each(v.body, '$.connectedSourceIds') s ORDER BY 1))
        AS source_ids,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'warehouse' AND v.valid_to IS NULL;

CREATE VIEW audit_current_functions AS
SELECT
    w.name AS workspace,
    v.resource_id AS function_id,
    v.name,
    json_extract(v.body, '$.resourceType') AS resource_type,
    json_extract(v.body, '$.createdAt') AS created_at,
    json_extract(v.body, '$.createdBy') AS created_by,
    json_extract(v.body, '$.deployedAt') AS deployed_at,
    json_extract(v.body, '$.code') AS code_fingerprint,
    (SELECT group_concat(name, ', ') FROM (
        SELECT json_extract(s.value, '$.name') AS name FROM json_each(v.body, '$.settings') s
        WHERE json_extract(s.value, '$.sensitive') = 1 ORDER BY 1)) AS sensitive_settings,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'function' AND v.valid_to IS NULL;

CREATE VIEW audit_current_tracking_plans AS
SELECT
    w.name AS workspace,
    v.resource_id AS tracking_plan_id,
    v.name,
    json_extract(v.body, '$.type') AS type,
    json_extract(v.body, '$.updatedAt') AS updated_at,
    coalesce(json_array_length(v.body, '$.sourceIds'), 0) AS source_count,
    (SELECT group_concat(id, ', ') FROM (
        SELECT s.value AS id FROM json_each(v.body, '$.sourceIds') s ORDER BY 1)) AS source_ids,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'tracking_plan' AND v.valid_to IS NULL;

-- One row per relationship between current resources. The edges come from the resource that
-- declares them (a destination's sourceId, a warehouse's connectedSourceIds, a tracking plan's
-- sourceIds, a group's members, a user's permissions); names are those of the current
-- versions, NULL when the other end is not in the latest snapshot.
CREATE VIEW audit_relationships AS
WITH edges(workspace_id, from_kind, from_id, relation, to_kind, to_id) AS (
    SELECT v.workspace_id, 'source', json_extract(v.body, '$.sourceId'), 'sends_to',
           'destination', v.resource_id
    FROM resource_versions v
    WHERE v.kind = 'destination' AND v.valid_to IS NULL
      AND json_extract(v.body, '$.sourceId') IS NOT NULL
    UNION
    SELECT v.workspace_id, 'source', s.value, 'syncs_to', 'warehouse', v.resource_id
    FROM resource_versions v, json_each(v.body, '$.connectedSourceIds') s
    WHERE v.kind = 'warehouse' AND v.valid_to IS NULL
    UNION
    SELECT v.workspace_id, 'source', s.value, 'validated_by', 'tracking_plan', v.resource_id
    FROM resource_versions v, json_each(v.body, '$.sourceIds') s
    WHERE v.kind = 'tracking_plan' AND v.valid_to IS NULL
    UNION
    SELECT v.workspace_id, 'user', json_extract(m.value, '$.id'), 'member_of', 'group',
           v.resource_id
    FROM resource_versions v, json_each(v.body, '$.members') m
    WHERE v.kind = 'group' AND v.valid_to IS NULL AND json_extract(m.value, '$.id') IS NOT NULL
    UNION
    SELECT v.workspace_id, 'user', v.resource_id, 'holds_role', 'role',
           json_extract(p.value, '$.roleId')
    FROM resource_versions v, json_each(v.body, '$.permissions') p
    WHERE v.kind = 'user' AND v.valid_to IS NULL AND json_extract(p.value, '$.roleId') IS NOT NULL
)
SELECT
    w.name AS workspace,
    e.from_kind,
    e.from_id,
    e.relation,
    e.to_kind,
    e.to_id,
    (SELECT a.name FROM resource_versions a
      WHERE a.workspace_id = e.workspace_id AND a.kind = e.from_kind
        AND a.resource_id = e.from_id AND a.valid_to IS NULL) AS from_name,
    (SELECT b.name FROM resource_versions b
      WHERE b.workspace_id = e.workspace_id AND b.kind = e.to_kind
        AND b.resource_id = e.to_id AND b.valid_to IS NULL) AS to_name
FROM edges e
JOIN workspaces w ON w.id = e.workspace_id;
