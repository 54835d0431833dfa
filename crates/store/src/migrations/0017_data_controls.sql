-- Schema 17: auditor views of the data controls that stand between a source and where its
-- data goes (issue 17), documented in docs/SCHEMA.md. Views only, same conventions as schema 6.

CREATE VIEW audit_current_destination_filters AS
SELECT
    w.name AS workspace,
    v.resource_id AS filter_id,
    v.name AS title,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.destinationId') AS destination_id,
    (SELECT d.name FROM resource_versions d
      WHERE d.workspace_id = v.workspace_id AND d.kind = 'destination' AND d.valid_to IS NULL
        AND d.resource_id = json_extract(v.body, '$.destinationId')) AS destination_name,
    json_extract(v.body, '$.sourceId') AS source_id,
    json_extract(v.body, '$.if') AS condition,
    (SELECT group_concat(t, ', ') FROM (
        SELECT json_extract(a.value, '$.type') AS t FROM json_each(v.body, '$.actions') a
        ORDER BY 1)) AS action_types,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'destination_filter' AND v.valid_to IS NULL;

CREATE VIEW audit_current_destination_subscriptions AS
SELECT
    w.name AS workspace,
    v.resource_id AS subscription_id,
    v.name,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.destinationId') AS destination_id,
    (SELECT d.name FROM resource_versions d
      WHERE d.workspace_id = v.workspace_id AND d.kind = 'destination' AND d.valid_to IS NULL
        AND d.resource_id = json_extract(v.body, '$.destinationId')) AS destination_name,
    json_extract(v.body, '$.actionSlug') AS action_slug,
    json_extract(v.body, '$.trigger') AS trigger,
    (SELECT group_concat(key, ', ') FROM (
        SELECT s.key FROM json_each(v.body, '$.settings') s ORDER BY 1)) AS mapped_fields,
    json_extract(v.body, '$.modelId') AS model_id,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'destination_subscription' AND v.valid_to IS NULL;

CREATE VIEW audit_current_source_schema_settings AS
SELECT
    w.name AS workspace,
    v.resource_id AS source_id,
    v.name AS source_name,
    json_extract(v.body, '$.settings.track.allowUnplannedEvents') AS allow_unplanned_events,
    json_extract(v.body, '$.settings.track.allowUnplannedEventProperties')
        AS allow_unplanned_event_properties,
    json_extract(v.body, '$.settings.identify.allowUnplannedTraits') AS allow_unplanned_traits,
    json_extract(v.body, '$.settings.group.allowUnplannedTraits') AS allow_unplanned_group_traits,
    json_extract(v.body, '$.settings.track.commonEventOnViolations') AS track_on_violations,
    json_extract(v.body, '$.settings.forwardingBlockedEventsTo') AS forwarding_blocked_events_to,
    json_extract(v.body, '$.settings.forwardingViolationsTo') AS forwarding_violations_to,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'source_schema_settings' AND v.valid_to IS NULL;

CREATE VIEW audit_current_transformations AS
SELECT
    w.name AS workspace,
    v.resource_id AS transformation_id,
    v.name,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.sourceId') AS source_id,
    (SELECT s.name FROM resource_versions s
      WHERE s.workspace_id = v.workspace_id AND s.kind = 'source' AND s.valid_to IS NULL
        AND s.resource_id = json_extract(v.body, '$.sourceId')) AS source_name,
    json_extract(v.body, '$.destinationMetadataId') AS destination_metadata_id,
    json_extract(v.body, '$.if') AS condition,
    coalesce(json_extract(v.body, '$.drop'), 0) AS drops_events,
    (SELECT group_concat(p, ', ') FROM (
        SELECT h.value AS p FROM json_each(v.body, '$.hashPropertiesConfiguration.paths') h
        ORDER BY 1)) AS hashed_paths,
    (SELECT group_concat(p, ', ') FROM (
        SELECT a.value AS p FROM json_each(v.body, '$.allowProperties') a ORDER BY 1))
        AS allowed_properties,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'transformation' AND v.valid_to IS NULL;

CREATE VIEW audit_current_reverse_etl_models AS
SELECT
    w.name AS workspace,
    v.resource_id AS model_id,
    v.name,
    json_extract(v.body, '$.enabled') AS enabled,
    json_extract(v.body, '$.sourceId') AS source_id,
    (SELECT s.name FROM resource_versions s
      WHERE s.workspace_id = v.workspace_id AND s.kind = 'source' AND s.valid_to IS NULL
        AND s.resource_id = json_extract(v.body, '$.sourceId')) AS source_name,
    json_extract(v.body, '$.query') AS query,
    json_extract(v.body, '$.queryIdentifierColumn') AS query_identifier_column,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'reverse_etl_model' AND v.valid_to IS NULL;
