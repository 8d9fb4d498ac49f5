-- What recording a spend log writes (issue #16's ingestion bound; BENCHMARKS.md, "a spend log's
-- foreign key and its event id's collation").
--
-- Spend logs keep their campaign id without a foreign key. Checking it cost a lookup and a row
-- lock (FOR KEY SHARE) on the campaign per log: 11–12 of 43 ms for a batch of 1,000 logs, and
-- concurrent batches share those locks (multixacts). What it guarded is kept otherwise:
-- - the spend path writes only events of campaigns it found, and its period totals and buckets
--   (which keep their foreign keys) refuse a campaign deleted meanwhile, failing the whole
--   transaction, logs included (`Attempt::Raced`; the retry answers 404);
-- - deleting a campaign or a brand removes its logs first, with the brand locked
--   (`repo::campaigns::forget_rows`), as it removes their event ids and status history;
-- - a reversal checks, under the brand lock, that the log it reverses still exists (else it
--   would fail later, on reading the campaign).
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_campaign_id_fkey;

-- Event ids are compared byte by byte: their uniqueness is exact equality, which the database's
-- default collation (a libc locale) decides the same way but more slowly (strcoll in every
-- comparison of the primary key's descent; 5.0 against 3.2 ms to probe 1,000 ids here). The
-- primary key is rebuilt: seconds per ten million ids.
ALTER TABLE spend_event_ids ALTER COLUMN event_id TYPE TEXT COLLATE "C";
