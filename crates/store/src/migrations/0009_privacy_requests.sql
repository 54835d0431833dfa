-- Schema version 9: data-subject requests (Segment regulations) made with segwatch.
--
-- The subject (a Segment userId) is personal data, so it is never stored: `subject_hash` is
-- HMAC-SHA256(salt, subject id) in lower-case hex, with the salt below, random per database and
-- created once. Anyone holding the database and an id can recompute the hash and prove a
-- request for that subject was made; the table itself is not a list of people.

CREATE TABLE privacy_salt (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    salt  BLOB NOT NULL CHECK (length(salt) = 32)
);
INSERT INTO privacy_salt (id, salt) VALUES (1, randomblob(32));

CREATE TABLE privacy_requests (
    id                    INTEGER PRIMARY KEY,
    workspace_id          INTEGER NOT NULL REFERENCES workspaces(id),
    regulation_id         TEXT NOT NULL,       -- Segment's regulateId
    regulation_type       TEXT NOT NULL,       -- e.g. SUPPRESS_WITH_DELETE
    subject_type          TEXT NOT NULL,       -- USER_ID
    subject_hash          TEXT NOT NULL,       -- hex HMAC-SHA256 of the subject id
    requested_by_os_user  TEXT,                -- $USER / $LOGNAME of who ran the command
    requested_by          TEXT,                -- --requested-by, as given
    requested_at          TEXT NOT NULL,
    overall_status        TEXT,                -- last known overallStatus
    destination_statuses  TEXT,                -- JSON array of {stream, id, name, status, error, finished_at}
    last_checked_at       TEXT,
    UNIQUE (workspace_id, regulation_id)
);
CREATE INDEX privacy_requests_subject ON privacy_requests (workspace_id, subject_hash);

CREATE VIEW audit_privacy_requests AS
SELECT
    w.name AS workspace,
    p.regulation_id,
    p.regulation_type,
    p.subject_type,
    p.subject_hash,
    p.requested_by_os_user,
    p.requested_by,
    p.requested_at,
    p.overall_status,
    p.destination_statuses,
    p.last_checked_at
FROM privacy_requests p
JOIN workspaces w ON w.id = p.workspace_id;
