-- What a state change writes (issue #19, item 3; BENCHMARKS.md, "the sweeps' writes").
--
-- A campaign's pause reasons are no longer indexed. An update that changes an indexed column
-- cannot be a heap-only (HOT) update: every pause and resume wrote a new entry into each of the
-- table's indexes (50,000 changes: 808 ms against 330 ms as HOT updates). Its readers now scan:
-- the reset sweeps (in id order, filtering), the state gauges' count by reasons (a parallel
-- sequential scan, 148 ms at 1M campaigns against 218 ms for the index-only scan it replaces),
-- the admin's list filtered by state or reason across all brands (~90 ms at 1M).
DROP INDEX campaigns_pause_reasons;
-- Room on each page for the new version of an updated row, so that it can stay there (HOT).
-- Pages written before this migration keep none until their rows are updated once and vacuumed
-- (or the table is rewritten: VACUUM FULL, pg_repack).
ALTER TABLE campaigns SET (fillfactor = 90);

-- The status history keeps its campaign id without a foreign key: checking it cost a lookup
-- and a row lock per history row (49 of 74 ms for 5,000 rows), 100,000 of them in a reset.
-- Every writer of history holds its campaign's brand lock, as deleting the campaign does, and
-- the deletes remove the campaign's history first (`repo::campaigns::forget_rows`).
ALTER TABLE campaign_status_history DROP CONSTRAINT campaign_status_history_campaign_id_fkey;
