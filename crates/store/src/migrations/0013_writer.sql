-- Schema version 12: who runs each poll.
--
-- A poll records the process that runs it (pid and host name) on its `running` snapshot, so
-- that a row left `running` can be told apart: its process still holds the database's writer
-- lock (the poll is live) or not (the process died; the row is marked `failed`,
-- "interrupted"). Rows written before schema 13 have NULL in both. Operational columns only:
-- they are not part of the tamper-evidence chain, and no auditor view reads them.

ALTER TABLE snapshots ADD COLUMN poller_pid INTEGER;
ALTER TABLE snapshots ADD COLUMN poller_host TEXT;
