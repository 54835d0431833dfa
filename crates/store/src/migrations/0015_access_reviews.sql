-- Schema version 15: access reviews (issue 16, item 4).
--
-- `segwatch access review` exports every grant of one snapshot for a reviewer to decide on;
-- `segwatch access review import FILE` records the filled-in file here: one review row and one
-- decision row per line of the file. Each review is its own link of the workspace's
-- tamper-evidence chain (crates/store/src/chain.rs): its content (parts `review` and
-- `decisions`) is hashed at import and chained after the workspace's latest link at that time
-- (`after_link_id`, a complete snapshot or a tombstone); the next snapshot chains after it.

CREATE TABLE access_reviews (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    -- The snapshot whose grants were reviewed (retention never prunes it).
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    -- The link this review chains after: the workspace's latest complete snapshot (or
    -- tombstone) id at import. Reviews after the same link chain in id order.
    after_link_id INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    -- The distinct reviewers of the decisions, comma-separated ('' if none decided).
    reviewers TEXT NOT NULL,
    -- The imported file's name (without its directory) and the SHA-256 of its bytes.
    file_name TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    approved INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    undecided INTEGER NOT NULL,
    -- The chain: manifest of its content, the manifest's SHA-256, and its chain hash.
    content_manifest TEXT,
    content_hash TEXT,
    chain_hash TEXT
);
CREATE INDEX access_reviews_workspace ON access_reviews (workspace_id, after_link_id, id);

-- One row per line of the imported file: the grant (identified like access_changes: user_id,
-- or email for a pending invite, resource_type, resource_id, role_id, via_group_id,
-- label_filter) and the decision on it.
CREATE TABLE access_review_decisions (
    id INTEGER PRIMARY KEY,
    review_id INTEGER NOT NULL REFERENCES access_reviews(id),
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    -- The line of the file (the header is line 1).
    line INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    invite INTEGER NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    role_id TEXT NOT NULL,
    role_name TEXT NOT NULL,
    via_group_id TEXT,
    via_group_name TEXT,
    -- JSON array of "key:value" (as in access_changes); NULL if none.
    label_filter TEXT,
    -- NULL: undecided.
    decision TEXT CHECK (decision IN ('approve', 'revoke')),
    reviewer TEXT,
    reviewed_at TEXT,
    comment TEXT
);
CREATE INDEX access_review_decisions_review ON access_review_decisions (review_id);

-- One row per decision of every imported review. `revoke_carried_out`, for a revoke decision:
-- 'yes' when the latest recorded access change of that grant after the reviewed snapshot is
-- its removal, 'no' when access changes are recorded (access_tracking) and none removed it
-- since (or it was added back), 'unknown' when the workspace records no access changes; NULL
-- for other decisions. `segwatch access review --follow-up` answers from the snapshots
-- themselves.
CREATE VIEW audit_access_reviews AS
SELECT
    w.name AS workspace,
    r.id AS review_id,
    r.snapshot_id AS reviewed_snapshot_id,
    s.finished_at AS reviewed_snapshot_at,
    r.imported_at,
    r.file_sha256,
    d.id AS decision_id,
    d.line,
    d.reviewer,
    d.reviewed_at,
    d.decision,
    d.comment,
    d.email,
    d.user_id,
    d.invite,
    d.role_name,
    d.role_id,
    d.resource_type,
    d.resource_id,
    d.resource_name,
    d.via_group_id,
    d.via_group_name,
    d.label_filter,
    CASE
        WHEN d.decision IS NOT 'revoke' THEN NULL
        WHEN (SELECT c.op FROM access_changes c
              WHERE c.workspace_id = d.workspace_id AND c.snapshot_id > r.snapshot_id
                AND c.user_id = d.user_id AND (d.user_id != '' OR c.email = d.email)
                AND c.resource_type = d.resource_type AND c.resource_id = d.resource_id
                AND c.role_id = d.role_id AND c.via_group_id IS d.via_group_id
                AND c.label_filter IS d.label_filter
              ORDER BY c.snapshot_id DESC, c.id DESC LIMIT 1) = 'removed' THEN 'yes'
        WHEN EXISTS (SELECT 1 FROM access_tracking t WHERE t.workspace_id = d.workspace_id)
            THEN 'no'
        ELSE 'unknown'
    END AS revoke_carried_out
FROM access_review_decisions d
JOIN access_reviews r ON r.id = d.review_id
JOIN workspaces w ON w.id = d.workspace_id
LEFT JOIN snapshots s ON s.id = r.snapshot_id;
