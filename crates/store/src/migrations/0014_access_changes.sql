-- Schema version 14: effective-access changes.
--
-- After each complete snapshot that changed users, groups, invites or sources, the poll
-- computes the effective access of the snapshot and of its base (segwatch_core::access) and
-- stores the difference here: one row per grant gained or lost. History therefore grows with
-- access changes, never with polls or with the size of the access matrix. The rows are content
-- of their snapshot (part `access_changes` of the tamper-evidence chain).
--
-- A grant is identified across snapshots by (user_id or, for a pending invite, email,
-- resource_type, resource_id, role_id, via_group_id, label_filter); names are as the snapshot
-- held them.

CREATE TABLE access_changes (
    id INTEGER PRIMARY KEY,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    -- 'added' (in this snapshot only) or 'removed' (in its base only).
    op TEXT NOT NULL CHECK (op IN ('added', 'removed')),
    -- The user's id; '' for a pending group invite (invite = 1).
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    invite INTEGER NOT NULL,
    -- PermissionResourceV1.type: WORKSPACE, SOURCE, SPACE, WAREHOUSE or FUNCTION.
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    role_id TEXT NOT NULL,
    role_name TEXT NOT NULL,
    -- NULL: a permission of the user's own; else the group it comes through.
    via_group_id TEXT,
    via_group_name TEXT,
    -- JSON array of "key:value" labels of a label-restricted workspace permission; NULL if none.
    label_filter TEXT,
    -- The resource whose change caused it (kind 'user', 'group' or 'source', and id), and that
    -- change's row when the snapshot recorded one.
    cause_kind TEXT NOT NULL,
    cause_id TEXT NOT NULL,
    cause_change_id INTEGER REFERENCES changes(id),
    -- Who made the causing change, from the audit trail (NULL: unknown).
    actor TEXT,
    actor_email TEXT,
    event_type TEXT,
    event_id TEXT
);
CREATE INDEX access_changes_snapshot ON access_changes (snapshot_id);
CREATE INDEX access_changes_grant
    ON access_changes (workspace_id, user_id, email, resource_type, resource_id, role_id);

-- The snapshot from which each workspace's access changes are recorded: grants with no
-- 'added' row were held at that snapshot (or earlier).
CREATE TABLE access_tracking (
    workspace_id INTEGER PRIMARY KEY REFERENCES workspaces(id),
    since_snapshot_id INTEGER NOT NULL REFERENCES snapshots(id)
);

-- Auditors: every access change with when it was observed and who caused it.
CREATE VIEW audit_access_changes AS
SELECT
    w.name AS workspace,
    a.snapshot_id,
    s.finished_at AS observed_at,
    a.op,
    a.user_id,
    a.email,
    a.invite,
    a.resource_type,
    a.resource_id,
    a.resource_name,
    a.role_id,
    a.role_name,
    CASE WHEN a.via_group_id IS NULL THEN 'direct' ELSE 'group' END AS via,
    a.via_group_id,
    a.via_group_name,
    a.label_filter,
    a.cause_kind,
    a.cause_id,
    a.cause_change_id,
    a.actor,
    a.actor_email,
    a.event_type,
    a.event_id
FROM access_changes a
JOIN workspaces w ON w.id = a.workspace_id
JOIN snapshots s ON s.id = a.snapshot_id
WHERE s.status = 'complete';
