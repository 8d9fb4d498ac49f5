-- Spend logs for years (issue #19, item 4; ARCHITECTURE "Spend logs over the years"):
-- `spend_logs` becomes a table partitioned by month of `occurred_at` (UTC), the month
-- `adbudget export-spend --month` exports, so that a retention can drop whole months (DETACH +
-- DROP: no row-by-row delete, no bloat). The partitions live in their own schema, out of the
-- application's (and of `diesel print-schema`'s) way; the `maintain_spend_logs` job creates the
-- coming months ahead and drops the months past `ADBUDGET_SPEND_LOG_RETENTION_MONTHS`.
CREATE SCHEMA spend_log_partitions;

-- PostgreSQL's unique indexes on a partitioned table must contain the partition key, so
-- `(brand_id, event_id)` could only be unique per month there. Its uniqueness is kept here
-- instead, one row per spend log that has an event id, written in the same statement as the log
-- (the log only when its id was new). The row names its log (id and occurred_at: the partition).
-- Rows go with their logs: a campaign's or brand's delete removes them (repo code, no trigger:
-- moving rows between partitions deletes and inserts them), the retention removes those of the
-- months it drops. An event id replayed after its month was dropped is then new again.
CREATE TABLE spend_event_ids (
    brand_id     BIGINT    NOT NULL,
    event_id     TEXT      NOT NULL,
    spend_log_id BIGINT    NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (brand_id, event_id)
);
INSERT INTO spend_event_ids (brand_id, event_id, spend_log_id, occurred_at)
SELECT brand_id, event_id, id, occurred_at FROM spend_logs WHERE event_id IS NOT NULL;

-- Where the retention leaves its mark: spend logs that occurred before `kept_from` were
-- dropped, so `verify` checks only the periods that start after it. No row: nothing dropped.
CREATE TABLE spend_log_horizon (
    id         BOOLEAN   PRIMARY KEY DEFAULT TRUE CHECK (id),
    kept_from  TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The existing table (when it holds any log) becomes the first partition, covering everything
-- before the first month that gets its own partition: no row is copied. Its indexes are replaced by the partitioned
-- table's (the event-id index is not needed any more; the primary key gains occurred_at). The
-- new primary key is built while the table is locked, as an index is by a migration: seconds per
-- ten million spend logs. Its foreign key becomes the partitioned table's (ATTACH adopts it).
ALTER SEQUENCE spend_logs_id_seq OWNED BY NONE;
DROP TRIGGER spend_logs_brand_of_campaign ON spend_logs;
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_pkey;
DROP INDEX spend_logs_brand_event;
DROP INDEX spend_logs_reverses;
DROP INDEX spend_logs_campaign_occurred;
ALTER TABLE spend_logs RENAME TO spend_logs_before;
ALTER TABLE spend_logs_before SET SCHEMA spend_log_partitions;

CREATE TABLE spend_logs (
    id          BIGINT    NOT NULL DEFAULT nextval('spend_logs_id_seq'),
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT,
    brand_id    BIGINT    NOT NULL,
    token_id    BIGINT,
    reverses_id BIGINT,
    reason      TEXT,
    PRIMARY KEY (id, occurred_at),
    CONSTRAINT spend_logs_amount_limit CHECK (amount <= 1000000000000000),
    CONSTRAINT spend_logs_amount_sign CHECK (
        (reverses_id IS NULL AND amount > 0 AND reason IS NULL)
        OR (reverses_id IS NOT NULL AND amount < 0 AND amount >= -1000000000000000
            AND reason IS NOT NULL))
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE spend_logs_id_seq OWNED BY spend_logs.id;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
-- A log is reversed at most once: a reversal carries the occurred_at of the log it reverses
-- (spend::reverse), so unique (reverses_id, occurred_at) is unique reverses_id.
CREATE UNIQUE INDEX spend_logs_reverses ON spend_logs (reverses_id, occurred_at)
    WHERE reverses_id IS NOT NULL;
CREATE TRIGGER spend_logs_brand_of_campaign BEFORE INSERT ON spend_logs
    FOR EACH ROW WHEN (NEW.brand_id IS NULL) EXECUTE FUNCTION spend_logs_brand_of_campaign();

-- Late events of months that have no partition (dropped by the retention) land here; the
-- retention deletes them as it drops their months.
CREATE TABLE spend_log_partitions.spend_logs_default PARTITION OF spend_logs DEFAULT;

DO $$
DECLARE
    first_month TIMESTAMP := date_trunc('month', now() AT TIME ZONE 'UTC');
BEGIN
    IF EXISTS (SELECT FROM spend_log_partitions.spend_logs_before) THEN
        -- The first month after every existing log and after the current one (events may
        -- claim up to five minutes in the future).
        first_month := date_trunc('month', greatest(
            (SELECT max(occurred_at) FROM spend_log_partitions.spend_logs_before),
            now() AT TIME ZONE 'UTC')) + interval '1 month';
        -- Its CHECKs were added NOT VALID (000004, 000007): validated, so that the partitioned
        -- table's own hold for every row.
        ALTER TABLE spend_log_partitions.spend_logs_before
            VALIDATE CONSTRAINT spend_logs_amount_limit;
        ALTER TABLE spend_log_partitions.spend_logs_before
            VALIDATE CONSTRAINT spend_logs_amount_sign;
        EXECUTE format('ALTER TABLE spend_logs ATTACH PARTITION '
                       'spend_log_partitions.spend_logs_before FOR VALUES FROM (MINVALUE) TO (%L)',
                       first_month);
    ELSE
        -- A new database: every month gets its own partition from the current one on.
        DROP TABLE spend_log_partitions.spend_logs_before;
    END IF;
    -- Two months; the job keeps the months ahead from then on.
    FOR i IN 0..1 LOOP
        EXECUTE format('CREATE TABLE spend_log_partitions.%I PARTITION OF spend_logs '
                       'FOR VALUES FROM (%L) TO (%L)',
                       'spend_logs_' || to_char(first_month + i * interval '1 month', 'YYYY_MM'),
                       first_month + i * interval '1 month',
                       first_month + (i + 1) * interval '1 month');
    END LOOP;
END $$;
