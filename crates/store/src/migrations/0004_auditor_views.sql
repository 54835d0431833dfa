-- Schema version 4: read-only views for auditors, documented in docs/SCHEMA.md.
--
-- One notion of time everywhere: a complete snapshot's observation time is its `finished_at`
-- (the instant its transaction committed). A resource version is valid from the observation
-- time of its `valid_from` snapshot until (not including) that of its `valid_to` snapshot;
-- NULL means still current. Every `*_at` column of these views is such an observation time,
-- RFC 3339 UTC with milliseconds (`2026-03-01T09:30:00.000Z`), so they sort as text.
--
-- Stability: view and column names are a public interface. Later migrations may add views and
-- append columns, never rename, remove or change the meaning of one (see docs/SCHEMA.md).
-- The SQL stays within what SQLite 3.31 parses (no `->` operators, no ORDER BY inside
-- aggregates), so an auditor's older `sqlite3` shell can still open the file.

-- Workspaces held in the database, with how much history each has.
CREATE VIEW audit_workspaces AS
SELECT
    w.name AS workspace,
    w.segment_id AS segment_workspace_id,
    w.created_at,
    (SELECT min(s.finished_at) FROM snapshots s
      WHERE s.workspace_id = w.id AND s.status = 'complete') AS first_observed_at,
    (SELECT max(s.finished_at) FROM snapshots s
      WHERE s.workspace_id = w.id AND s.status = 'complete') AS last_observed_at,
    (SELECT count(*) FROM snapshots s
      WHERE s.workspace_id = w.id AND s.status = 'complete') AS complete_polls,
    (SELECT count(*) FROM snapshots s
      WHERE s.workspace_id = w.id AND s.status = 'failed') AS failed_polls
FROM workspaces w;

-- Every poll, whatever its outcome.
CREATE VIEW audit_polls AS
SELECT
    w.name AS workspace,
    s.id AS snapshot_id,
    s.status,
    s.started_at,
    s.finished_at,
    CASE WHEN s.status = 'complete' THEN s.finished_at END AS observed_at,
    CASE WHEN s.status = 'complete' AND s.base_snapshot_id IS NULL THEN 1 ELSE 0 END AS is_baseline,
    s.base_snapshot_id,
    s.resource_count,
    s.added,
    s.removed,
    s.modified,
    s.api_requests,
    s.duration_ms,
    s.error
FROM snapshots s
JOIN workspaces w ON w.id = s.workspace_id;

-- Every stored version of every resource, with the interval it was valid.
CREATE VIEW audit_versions AS
SELECT
    w.name AS workspace,
    v.kind,
    v.resource_id,
    v.name,
    v.id AS version_id,
    v.valid_from AS valid_from_snapshot_id,
    f.finished_at AS valid_from_at,
    v.valid_to AS valid_to_snapshot_id,
    t.finished_at AS valid_to_at,
    CASE WHEN v.valid_to IS NULL THEN 1 ELSE 0 END AS is_current,
    v.content_hash,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
LEFT JOIN snapshots t ON t.id = v.valid_to;

-- Current state, one view per kind: the versions of the latest complete snapshot.

CREATE VIEW audit_current_workspace AS
SELECT
    w.name AS workspace,
    v.resource_id AS segment_workspace_id,
    json_extract(v.body, '$.name') AS name,
    json_extract(v.body, '$.slug') AS slug,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'workspace' AND v.valid_to IS NULL;

CREATE VIEW audit_current_roles AS
SELECT
    w.name AS workspace,
    v.resource_id AS role_id,
    json_extract(v.body, '$.name') AS name,
    json_extract(v.body, '$.description') AS description,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'role' AND v.valid_to IS NULL;

CREATE VIEW audit_current_users AS
SELECT
    w.name AS workspace,
    v.resource_id AS user_id,
    json_extract(v.body, '$.email') AS email,
    json_extract(v.body, '$.name') AS name,
    (SELECT group_concat(role_name, ', ') FROM (
        SELECT DISTINCT json_extract(p.value, '$.roleName') AS role_name
        FROM json_each(v.body, '$.permissions') p
        WHERE json_extract(p.value, '$.roleName') IS NOT NULL
        ORDER BY 1)) AS role_names,
    (SELECT group_concat(role_name, ', ') FROM (
        SELECT DISTINCT json_extract(p.value, '$.roleName') AS role_name
        FROM json_each(v.body, '$.permissions') p
        WHERE json_extract(p.value, '$.roleName') IS NOT NULL
          AND (json_type(p.value, '$.labels') IS NULL OR json_type(p.value, '$.labels') = 'null'
               OR (json_type(p.value, '$.labels') = 'array' AND json_array_length(p.value, '$.labels') = 0))
          AND EXISTS (
              SELECT 1 FROM json_each(p.value, '$.resources') r
              WHERE json_extract(r.value, '$.type') = 'WORKSPACE'
                AND (json_type(r.value, '$.labels') IS NULL OR json_type(r.value, '$.labels') = 'null'
                     OR (json_type(r.value, '$.labels') = 'array' AND json_array_length(r.value, '$.labels') = 0)))
        ORDER BY 1)) AS workspace_role_names,
    coalesce(json_array_length(v.body, '$.permissions'), 0) AS permission_count,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'user' AND v.valid_to IS NULL;

CREATE VIEW audit_current_groups AS
SELECT
    w.name AS workspace,
    v.resource_id AS group_id,
    json_extract(v.body, '$.name') AS name,
    coalesce(json_array_length(v.body, '$.members'), 0) AS member_count,
    (SELECT group_concat(email, ', ') FROM (
        SELECT json_extract(m.value, '$.email') AS email
        FROM json_each(v.body, '$.members') m ORDER BY 1)) AS member_emails,
    (SELECT group_concat(role_name, ', ') FROM (
        SELECT DISTINCT json_extract(p.value, '$.roleName') AS role_name
        FROM json_each(v.body, '$.permissions') p
        WHERE json_extract(p.value, '$.roleName') IS NOT NULL
        ORDER BY 1)) AS role_names,
    coalesce(json_array_length(v.body, '$.permissions'), 0) AS permission_count,
    coalesce(json_array_length(v.body, '$.invites'), 0) AS invite_count,
    (SELECT group_concat(email, ', ') FROM (
        SELECT i.value AS email FROM json_each(v.body, '$.invites') i ORDER BY 1)) AS invite_emails,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'group' AND v.valid_to IS NULL;

CREATE VIEW audit_current_invites AS
SELECT
    w.name AS workspace,
    v.resource_id AS email,
    (SELECT group_concat(name, ', ') FROM (
        SELECT json_extract(g.body, '$.name') AS name
        FROM resource_versions g, json_each(g.body, '$.invites') i
        WHERE g.workspace_id = v.workspace_id AND g.kind = 'group' AND g.valid_to IS NULL
          AND i.value = v.resource_id
        ORDER BY 1)) AS group_names,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'invite' AND v.valid_to IS NULL;

CREATE VIEW audit_current_sources AS
SELECT
    w.name AS workspace,
    v.resource_id AS source_id,
    json_extract(v.body, '$.name') AS name,
    json_extract(v.body, '$.slug') AS slug,
    json_extract(v.body, '$.enabled') AS enabled,
    (SELECT json_extract(l.value, '$.value') FROM json_each(v.body, '$.labels') l
      WHERE json_extract(l.value, '$.key') = 'environment' LIMIT 1) AS environment,
    (SELECT group_concat(label, ', ') FROM (
        SELECT json_extract(l.value, '$.key') || ':' || json_extract(l.value, '$.value') AS label
        FROM json_each(v.body, '$.labels') l ORDER BY 1)) AS labels,
    (SELECT group_concat(fingerprint, ', ') FROM (
        SELECT k.value AS fingerprint FROM json_each(v.body, '$.writeKeys') k ORDER BY k.key))
        AS write_key_fingerprints,
    coalesce(json_array_length(v.body, '$.writeKeys'), 0) AS write_key_count,
    json_extract(v.body, '$.metadata.name') AS catalog_name,
    json_extract(v.body, '$.metadata.slug') AS catalog_slug,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'source' AND v.valid_to IS NULL;

CREATE VIEW audit_current_labels AS
SELECT
    w.name AS workspace,
    v.resource_id AS label,
    json_extract(v.body, '$.key') AS key,
    json_extract(v.body, '$.value') AS value,
    json_extract(v.body, '$.description') AS description,
    f.finished_at AS since_at,
    v.id AS version_id,
    v.body
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
WHERE v.kind = 'label' AND v.valid_to IS NULL;

-- Access over time: one row per version of a user (or group) and permission it holds, valid
-- over that version's interval. A role held across several versions appears once per version.

CREATE VIEW audit_user_roles AS
SELECT
    w.name AS workspace,
    v.resource_id AS user_id,
    json_extract(v.body, '$.email') AS email,
    json_extract(p.value, '$.roleId') AS role_id,
    json_extract(p.value, '$.roleName') AS role_name,
    CASE WHEN (json_type(p.value, '$.labels') IS NULL OR json_type(p.value, '$.labels') = 'null'
               OR (json_type(p.value, '$.labels') = 'array' AND json_array_length(p.value, '$.labels') = 0))
          AND EXISTS (
              SELECT 1 FROM json_each(p.value, '$.resources') r
              WHERE json_extract(r.value, '$.type') = 'WORKSPACE'
                AND (json_type(r.value, '$.labels') IS NULL OR json_type(r.value, '$.labels') = 'null'
                     OR (json_type(r.value, '$.labels') = 'array' AND json_array_length(r.value, '$.labels') = 0)))
         THEN 1 ELSE 0 END AS workspace_wide,
    json_extract(p.value, '$.resources') AS grant_resources,
    json_extract(p.value, '$.labels') AS grant_labels,
    v.id AS version_id,
    v.valid_from AS valid_from_snapshot_id,
    f.finished_at AS valid_from_at,
    v.valid_to AS valid_to_snapshot_id,
    t.finished_at AS valid_to_at
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
LEFT JOIN snapshots t ON t.id = v.valid_to
JOIN json_each(v.body, '$.permissions') p
WHERE v.kind = 'user';

CREATE VIEW audit_group_roles AS
SELECT
    w.name AS workspace,
    v.resource_id AS group_id,
    json_extract(v.body, '$.name') AS group_name,
    json_extract(p.value, '$.roleId') AS role_id,
    json_extract(p.value, '$.roleName') AS role_name,
    CASE WHEN (json_type(p.value, '$.labels') IS NULL OR json_type(p.value, '$.labels') = 'null'
               OR (json_type(p.value, '$.labels') = 'array' AND json_array_length(p.value, '$.labels') = 0))
          AND EXISTS (
              SELECT 1 FROM json_each(p.value, '$.resources') r
              WHERE json_extract(r.value, '$.type') = 'WORKSPACE'
                AND (json_type(r.value, '$.labels') IS NULL OR json_type(r.value, '$.labels') = 'null'
                     OR (json_type(r.value, '$.labels') = 'array' AND json_array_length(r.value, '$.labels') = 0)))
         THEN 1 ELSE 0 END AS workspace_wide,
    json_extract(p.value, '$.resources') AS grant_resources,
    json_extract(p.value, '$.labels') AS grant_labels,
    coalesce(json_array_length(v.body, '$.members'), 0) AS member_count,
    v.id AS version_id,
    v.valid_from AS valid_from_snapshot_id,
    f.finished_at AS valid_from_at,
    v.valid_to AS valid_to_snapshot_id,
    t.finished_at AS valid_to_at
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
LEFT JOIN snapshots t ON t.id = v.valid_to
JOIN json_each(v.body, '$.permissions') p
WHERE v.kind = 'group';

-- Group membership over time: one row per version of a group and member.
CREATE VIEW audit_group_members AS
SELECT
    w.name AS workspace,
    v.resource_id AS group_id,
    json_extract(v.body, '$.name') AS group_name,
    json_extract(m.value, '$.id') AS user_id,
    json_extract(m.value, '$.email') AS email,
    v.id AS version_id,
    v.valid_from AS valid_from_snapshot_id,
    f.finished_at AS valid_from_at,
    v.valid_to AS valid_to_snapshot_id,
    t.finished_at AS valid_to_at
FROM resource_versions v
JOIN workspaces w ON w.id = v.workspace_id
JOIN snapshots f ON f.id = v.valid_from
LEFT JOIN snapshots t ON t.id = v.valid_to
JOIN json_each(v.body, '$.members') m
WHERE v.kind = 'group';

-- Changes: one row per resource added, removed or modified, observed at its snapshot's time.
-- The change happened in Segment between `previous_observed_at` and `observed_at`.
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
    c.text_diff
FROM changes c
JOIN workspaces w ON w.id = c.workspace_id
JOIN snapshots s ON s.id = c.snapshot_id
LEFT JOIN snapshots b ON b.id = s.base_snapshot_id;

-- Field-level changes: one row per changed path of a modified resource. A value's type is
-- NULL when the field was absent on that side, else the JSON type ('null', 'true', 'false',
-- 'integer', 'real', 'text', 'array', 'object'); the value is an SQL value for scalars and
-- JSON text for arrays and objects.
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
    json_extract(f.value, '$.new') AS new_value
FROM changes c
JOIN workspaces w ON w.id = c.workspace_id
JOIN snapshots s ON s.id = c.snapshot_id
JOIN json_each(c.fields) f;

-- Change alerts and compliance findings. `opened_at` and `resolved_at` are the observation
-- times of the snapshots that raised and resolved them; `age_s` is how long a finding has been
-- open (until it resolved, or until now), NULL for change alerts, which are single events.
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
    a.explanation
FROM alerts a
JOIN workspaces w ON w.id = a.workspace_id
JOIN snapshots o ON o.id = a.snapshot_id
LEFT JOIN snapshots r ON r.id = a.resolved_snapshot_id;

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
