-- Schema version 16 (issue 16, items 5 and 6): identity hygiene and effective access, as
-- auditor views (docs/SCHEMA.md), and the indexes that keep "who acted last" cheap.
--
-- Numbered 16: 0015_access_reviews.sql is written concurrently and comes before it once both
-- are merged. Views only read; nothing here rewrites a table.
--
-- The SQL stays within what SQLite 3.31 parses (window functions and expression indexes are
-- older than that; no `->` operators).

-- "Latest event of each actor": the poll's one grouped query (Store::trail_activity) reads this
-- index only, and audit_user_activity / audit_api_tokens look one actor up through it.
CREATE INDEX audit_events_by_actor
    ON audit_events (workspace_id, actor, actor_email, occurred_at);
-- The same by email, case-insensitively (events that name a user by email only).
CREATE INDEX audit_events_by_actor_email
    ON audit_events (workspace_id, lower(actor_email), occurred_at);

-- Per current user: when the audit trail last shows them acting, and since when it has been
-- read. Segment's audit trail records actions (changes made in the app or through the API),
-- not logins: no action is not the same as no login.
CREATE VIEW audit_user_activity AS
WITH reads AS (
    -- Once per workspace, not per user (a poll every 15 minutes is 35,000 reads a year).
    SELECT workspace_id, min(start_time) AS since, max(end_time) AS until
    FROM audit_reads GROUP BY workspace_id
),
users AS (
    SELECT v.workspace_id, v.resource_id AS user_id,
           coalesce(json_extract(v.body, '$.email'), v.name) AS email,
           v.valid_from
    FROM resource_versions v
    WHERE v.kind = 'user' AND v.valid_to IS NULL
),
acted AS (
    SELECT u.*,
        -- Through the indexes audit_events_by_actor and audit_events_by_actor_email.
        -- (Without INDEXED BY, SQLite may scan the time index backwards for the max: the whole
        -- trail for a user who never acted.)
        (SELECT max(e.occurred_at) FROM audit_events e INDEXED BY audit_events_by_actor
          WHERE e.workspace_id = u.workspace_id AND e.actor = u.user_id) AS by_id,
        (SELECT max(e.occurred_at) FROM audit_events e
          WHERE e.workspace_id = u.workspace_id AND lower(e.actor_email) = lower(u.email)) AS by_email
    FROM users u
),
latest AS (
    SELECT a.*, max(coalesce(a.by_id, a.by_email), coalesce(a.by_email, a.by_id)) AS last_at
    FROM acted a
)
SELECT
    w.name AS workspace,
    l.user_id,
    l.email,
    l.last_at AS last_acting_at,
    r.since AS trail_read_since,
    r.until AS trail_read_until,
    CAST(julianday('now') - julianday(coalesce(l.last_at, r.since)) AS INTEGER)
        AS days_without_action,
    f.finished_at AS user_since_at
FROM latest l
JOIN workspaces w ON w.id = l.workspace_id
JOIN snapshots f ON f.id = l.valid_from
LEFT JOIN reads r ON r.workspace_id = l.workspace_id;

-- Public API tokens the audit trail shows: created (an event "… Token Created" on the token),
-- acting (events whose actor is `public-api-token/<id>`), deleted or revoked. One row per
-- token id; Segment's API lists no tokens, so the trail is the only inventory there is.
CREATE VIEW audit_api_tokens AS
WITH tokens AS (
    SELECT workspace_id, substr(actor, 18) AS token_id
    FROM audit_events WHERE actor LIKE 'public-api-token/%'
    UNION
    SELECT workspace_id, resource_id
    FROM audit_events WHERE type LIKE '%token%created%'
)
SELECT
    w.name AS workspace,
    t.token_id,
    'public-api-token/' || t.token_id AS actor,
    (SELECT e.resource_name FROM audit_events e
      WHERE e.workspace_id = t.workspace_id AND e.resource_id = t.token_id
        AND e.type LIKE '%token%created%' ORDER BY e.occurred_at DESC LIMIT 1) AS name,
    (SELECT e.occurred_at FROM audit_events e
      WHERE e.workspace_id = t.workspace_id AND e.resource_id = t.token_id
        AND e.type LIKE '%token%created%' ORDER BY e.occurred_at DESC LIMIT 1) AS created_at,
    (SELECT e.actor FROM audit_events e
      WHERE e.workspace_id = t.workspace_id AND e.resource_id = t.token_id
        AND e.type LIKE '%token%created%' ORDER BY e.occurred_at DESC LIMIT 1) AS created_by,
    (SELECT e.actor_email FROM audit_events e
      WHERE e.workspace_id = t.workspace_id AND e.resource_id = t.token_id
        AND e.type LIKE '%token%created%' ORDER BY e.occurred_at DESC LIMIT 1) AS created_by_email,
    (SELECT min(e.occurred_at) FROM audit_events e INDEXED BY audit_events_by_actor
      WHERE e.workspace_id = t.workspace_id
        AND e.actor = 'public-api-token/' || t.token_id) AS first_acting_at,
    (SELECT max(e.occurred_at) FROM audit_events e INDEXED BY audit_events_by_actor
      WHERE e.workspace_id = t.workspace_id
        AND e.actor = 'public-api-token/' || t.token_id) AS last_acting_at,
    (SELECT count(*) FROM audit_events e INDEXED BY audit_events_by_actor
      WHERE e.workspace_id = t.workspace_id
        AND e.actor = 'public-api-token/' || t.token_id) AS actions,
    (SELECT max(e.occurred_at) FROM audit_events e
      WHERE e.workspace_id = t.workspace_id AND e.resource_id = t.token_id
        AND (e.type LIKE '%token%deleted%' OR e.type LIKE '%token%revoked%')) AS deleted_at,
    r.since AS trail_read_since
FROM tokens t
JOIN workspaces w ON w.id = t.workspace_id
LEFT JOIN (SELECT workspace_id, min(start_time) AS since FROM audit_reads GROUP BY workspace_id) r
    ON r.workspace_id = t.workspace_id;

-- Effective access over time (docs/ACCESS.md): one row per grant and per validity window of
-- the versions it is computed from (the user's, the group's, the source's). A grant is held at
-- snapshot S when valid_from_snapshot_id <= S < valid_to_snapshot_id (NULL: still held).
CREATE VIEW audit_effective_access AS
WITH
ver AS (
    SELECT v.workspace_id, v.kind, v.resource_id, v.name, v.body,
           v.valid_from AS f, v.valid_to AS t
    FROM resource_versions v
    WHERE v.kind IN ('user', 'group', 'source')
),
-- Members of each group version, as {id, email} (a bare email string is a member too).
members AS (
    SELECT g.workspace_id, g.resource_id AS group_id, g.name AS group_name, g.body, g.f, g.t,
           CASE WHEN m.type = 'text' THEN NULL
                ELSE json_extract(m.value, '$.id') END AS m_id,
           CASE WHEN m.type = 'text' THEN m.value
                ELSE json_extract(m.value, '$.email') END AS m_email,
           m.type = 'text' AS bare
    FROM ver g JOIN json_each(g.body, '$.members') m
    WHERE g.kind = 'group' AND m.type IN ('text', 'object')
),
-- When a user with a given id (or email) exists: each user version …
presence AS (
    SELECT workspace_id, 'id' AS key_kind, resource_id AS key, resource_id AS user_id, f, t
    FROM ver WHERE kind = 'user'
    UNION ALL
    SELECT workspace_id, 'email', coalesce(json_extract(body, '$.email'), name), resource_id, f, t
    FROM ver WHERE kind = 'user'
),
gaps AS (
    SELECT workspace_id, key_kind, key, f, t,
           CASE WHEN lag(f) OVER w IS NULL THEN 0 ELSE lag(t) OVER w END AS gap_from,
           lead(f) OVER w AS next_f
    FROM presence
    WINDOW w AS (PARTITION BY workspace_id, key_kind, key ORDER BY f)
),
-- … and when none does: before, between and after them (a key never seen has no row here).
absent AS (
    SELECT workspace_id, key_kind, key, gap_from AS af, f AS at
    FROM gaps WHERE gap_from IS NOT NULL AND gap_from < f
    UNION ALL
    SELECT workspace_id, key_kind, key, t, NULL
    FROM gaps WHERE next_f IS NULL AND t IS NOT NULL
),
-- The parts of each member's group version when no user has the member's id (all of it for a
-- member listed without an id): there, the member is matched by email.
unmatched AS (
    SELECT m.*, m.f AS sf, m.t AS st FROM members m
    WHERE m.m_id IS NULL
       OR NOT EXISTS (
           SELECT 1 FROM presence p
           WHERE p.workspace_id = m.workspace_id AND p.key_kind = 'id' AND p.key = m.m_id)
    UNION ALL
    SELECT m.*, max(m.f, a.af),
           CASE WHEN m.t IS NULL THEN a.at WHEN a.at IS NULL THEN m.t ELSE min(m.t, a.at) END
    FROM members m JOIN absent a
      ON a.workspace_id = m.workspace_id AND a.key_kind = 'id' AND a.key = m.m_id
     AND a.af < coalesce(m.t, 9223372036854775807) AND m.f < coalesce(a.at, 9223372036854775807)
),
holders AS (
    -- A user's own permissions.
    SELECT u.workspace_id, u.resource_id AS user_id,
           coalesce(json_extract(u.body, '$.email'), u.name) AS email,
           0 AS invite, NULL AS group_id, NULL AS group_name, u.body AS holder_body, u.f, u.t
    FROM ver u WHERE u.kind = 'user'
    UNION ALL
    -- A group's permissions, for each member that is a user by id, over the time both
    -- versions hold …
    SELECT m.workspace_id, u.resource_id,
           coalesce(json_extract(u.body, '$.email'), u.name),
           0, m.group_id, m.group_name, m.body,
           max(m.f, u.valid_from),
           CASE WHEN m.t IS NULL THEN u.valid_to WHEN u.valid_to IS NULL THEN m.t
                ELSE min(m.t, u.valid_to) END
    -- (CROSS JOIN keeps the members outside: each is one index lookup of its user.)
    FROM members m CROSS JOIN resource_versions u
      ON u.workspace_id = m.workspace_id AND u.kind = 'user' AND u.resource_id = m.m_id
     AND u.valid_from < coalesce(m.t, 9223372036854775807)
     AND m.f < coalesce(u.valid_to, 9223372036854775807)
    UNION ALL
    -- … else a user by email …
    SELECT m.workspace_id, u.user_id, u.key,
           0, m.group_id, m.group_name, m.body,
           max(m.sf, u.f),
           CASE WHEN m.st IS NULL THEN u.t WHEN u.t IS NULL THEN m.st ELSE min(m.st, u.t) END
    FROM unmatched m JOIN presence u
      ON u.workspace_id = m.workspace_id AND u.key_kind = 'email' AND u.key = m.m_email
     AND u.f < coalesce(m.st, 9223372036854775807) AND m.sf < coalesce(u.t, 9223372036854775807)
    UNION ALL
    -- … else, for a member with an id or a bare email, the member as the group lists it (a
    -- bare email has no id): while no user has that email at all …
    SELECT m.workspace_id, coalesce(m.m_id, ''), coalesce(m.m_email, ''),
           0, m.group_id, m.group_name, m.body, m.sf, m.st
    FROM unmatched m
    WHERE (m.m_id IS NOT NULL OR m.bare)
      AND NOT EXISTS (
          SELECT 1 FROM presence p
          WHERE p.workspace_id = m.workspace_id AND p.key_kind = 'email' AND p.key = m.m_email)
    UNION ALL
    -- … or when none has it.
    SELECT m.workspace_id, coalesce(m.m_id, ''), coalesce(m.m_email, ''),
           0, m.group_id, m.group_name, m.body,
           max(m.sf, a.af),
           CASE WHEN m.st IS NULL THEN a.at WHEN a.at IS NULL THEN m.st ELSE min(m.st, a.at) END
    FROM unmatched m JOIN absent a
      ON a.workspace_id = m.workspace_id AND a.key_kind = 'email' AND a.key = m.m_email
     AND a.af < coalesce(m.st, 9223372036854775807) AND m.sf < coalesce(a.at, 9223372036854775807)
    WHERE m.m_id IS NOT NULL OR m.bare
    UNION ALL
    -- Pending invites of a group: its grants, flagged, with no user id.
    SELECT g.workspace_id, '', i.value, 1, g.resource_id, g.name, g.body, g.f, g.t
    FROM ver g JOIN json_each(g.body, '$.invites') i
    WHERE g.kind = 'group' AND i.type = 'text'
),
-- One row per permission resource, with the label filter of a workspace-level one (the
-- resource's labels and the permission's, sorted by key then value; NULL when none).
policies AS (
    SELECT h.*,
           coalesce(json_extract(p.value, '$.roleId'), '') AS role_id,
           coalesce(json_extract(p.value, '$.roleName'), '') AS role_name,
           coalesce(json_extract(r.value, '$.type'), '') AS resource_type,
           coalesce(json_extract(r.value, '$.id'), '') AS resource_id,
           CASE WHEN json_extract(r.value, '$.type') = 'WORKSPACE' THEN (
               SELECT CASE WHEN count(*) = 0 THEN NULL
                           ELSE json_group_array(k || ':' || v) END
               FROM (SELECT DISTINCT json_extract(l.value, '$.key') AS k,
                                     json_extract(l.value, '$.value') AS v
                     FROM (SELECT value FROM json_each(r.value, '$.labels')
                           UNION ALL
                           SELECT value FROM json_each(p.value, '$.labels')) l
                     ORDER BY k, v))
           END AS label_filter,
           r.value AS resource_json, p.value AS permission_json
    FROM holders h
    JOIN json_each(h.holder_body, '$.permissions') p
    JOIN json_each(p.value, '$.resources') r
),
-- Each source version's labels, once.
source_labels AS (
    SELECT s.workspace_id, s.resource_id, s.f, s.t,
           json_extract(l.value, '$.key') AS k, json_extract(l.value, '$.value') AS v
    FROM ver s JOIN json_each(s.body, '$.labels') l
    WHERE s.kind = 'source'
    -- (No limit, but a subquery with one is not flattened into the join below: it is built
    -- once and indexed, rather than every source's labels parsed again for every policy.)
    LIMIT -1
),
grants AS (
    -- Not label-restricted: the named resource (an unrestricted workspace-level permission is
    -- one WORKSPACE row; labels on any other resource refine nothing).
    SELECT workspace_id, user_id, email, invite, resource_type, resource_id, role_id, role_name,
           group_id, group_name, NULL AS label_filter, f, t
    FROM policies WHERE label_filter IS NULL
    UNION ALL
    -- Label-restricted: every source carrying ANY of the labels (the resource's …
    SELECT p.workspace_id, p.user_id, p.email, p.invite, 'SOURCE', s.resource_id, p.role_id,
           p.role_name, p.group_id, p.group_name, p.label_filter,
           max(p.f, s.f),
           CASE WHEN p.t IS NULL THEN s.t WHEN s.t IS NULL THEN p.t ELSE min(p.t, s.t) END
    FROM policies p
    CROSS JOIN json_each(p.resource_json, '$.labels') fl
    CROSS JOIN source_labels s
      ON s.workspace_id = p.workspace_id
     AND s.k = json_extract(fl.value, '$.key') AND s.v = json_extract(fl.value, '$.value')
     AND s.f < coalesce(p.t, 9223372036854775807) AND p.f < coalesce(s.t, 9223372036854775807)
    WHERE p.label_filter IS NOT NULL
    UNION ALL
    -- … or the permission's), while both versions hold; one row however many labels match.
    SELECT p.workspace_id, p.user_id, p.email, p.invite, 'SOURCE', s.resource_id, p.role_id,
           p.role_name, p.group_id, p.group_name, p.label_filter,
           max(p.f, s.f),
           CASE WHEN p.t IS NULL THEN s.t WHEN s.t IS NULL THEN p.t ELSE min(p.t, s.t) END
    FROM policies p
    CROSS JOIN json_each(p.permission_json, '$.labels') fl
    CROSS JOIN source_labels s
      ON s.workspace_id = p.workspace_id
     AND s.k = json_extract(fl.value, '$.key') AND s.v = json_extract(fl.value, '$.value')
     AND s.f < coalesce(p.t, 9223372036854775807) AND p.f < coalesce(s.t, 9223372036854775807)
    WHERE p.label_filter IS NOT NULL
)
SELECT DISTINCT
    w.name AS workspace,
    g.user_id,
    g.email,
    g.invite,
    g.resource_type,
    g.resource_id,
    g.role_id,
    g.role_name,
    CASE WHEN g.group_id IS NULL THEN 'direct' ELSE 'group' END AS via,
    g.group_id AS via_group_id,
    g.group_name AS via_group_name,
    g.label_filter,
    g.f AS valid_from_snapshot_id,
    fs.finished_at AS valid_from_at,
    g.t AS valid_to_snapshot_id,
    ts.finished_at AS valid_to_at
FROM grants g
JOIN workspaces w ON w.id = g.workspace_id
JOIN snapshots fs ON fs.id = g.f
LEFT JOIN snapshots ts ON ts.id = g.t;
