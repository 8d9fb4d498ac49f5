-- Back to one table: the partitions' rows are copied into it (the event ids' uniqueness returns
-- to the table itself).
CREATE TABLE spend_logs_flat (LIKE spend_logs INCLUDING DEFAULTS);
INSERT INTO spend_logs_flat SELECT * FROM spend_logs;
ALTER SEQUENCE spend_logs_id_seq OWNED BY NONE;
DROP TABLE spend_logs;
DROP SCHEMA spend_log_partitions CASCADE;
ALTER TABLE spend_logs_flat RENAME TO spend_logs;
ALTER SEQUENCE spend_logs_id_seq OWNED BY spend_logs.id;
ALTER TABLE spend_logs ADD PRIMARY KEY (id);
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_campaign_id_fkey
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_amount_limit
    CHECK (amount <= 1000000000000000) NOT VALID;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_amount_sign CHECK (
    (reverses_id IS NULL AND amount > 0 AND reason IS NULL)
    OR (reverses_id IS NOT NULL AND amount < 0 AND amount >= -1000000000000000
        AND reason IS NOT NULL)) NOT VALID;
CREATE UNIQUE INDEX spend_logs_brand_event ON spend_logs (brand_id, event_id);
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
CREATE UNIQUE INDEX spend_logs_reverses ON spend_logs (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE TRIGGER spend_logs_brand_of_campaign BEFORE INSERT ON spend_logs
    FOR EACH ROW WHEN (NEW.brand_id IS NULL) EXECUTE FUNCTION spend_logs_brand_of_campaign();
DROP TABLE spend_log_horizon;
DROP TABLE spend_event_ids;
