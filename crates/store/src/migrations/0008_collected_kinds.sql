-- Schema version 8: which resource kinds each complete snapshot collected.
--
-- A kind collected for the first time (a new segwatch version, or a kind turned on in
-- [collect]) is a baseline for that kind: its resources are recorded as added, but change rules
-- do not alert on them. NULL (snapshots from before this column) means the kinds segwatch has
-- always collected: workspace, role, user, group, invite, source, label.
ALTER TABLE snapshots ADD COLUMN collected_kinds TEXT;  -- JSON array of kind names
