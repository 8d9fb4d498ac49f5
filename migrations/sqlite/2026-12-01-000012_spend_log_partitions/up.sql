-- Spend logs for years (issue #19, item 4): SQLite keeps one table, and the `maintain_spend_logs`
-- job deletes the months past `ADBUDGET_SPEND_LOG_RETENTION_MONTHS` from it (PostgreSQL
-- partitions it by month and drops whole months).
--
-- Where the retention leaves its mark: spend logs that occurred before `kept_from` were
-- dropped, so `verify` checks only the periods that start after it. No row: nothing dropped.
CREATE TABLE spend_log_horizon (
    id         BOOLEAN   PRIMARY KEY NOT NULL DEFAULT TRUE CHECK (id),
    kept_from  TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
