-- See the PostgreSQL version: pause reasons no longer indexed, so that changing them does not
-- rewrite index entries (SQLite has no HOT updates, but each index is one more write per change).
-- The status history's foreign key stays here (dropping it would rebuild the table); the deletes
-- remove a campaign's history first on both backends, so it never acts.
DROP INDEX campaigns_pause_reasons;
