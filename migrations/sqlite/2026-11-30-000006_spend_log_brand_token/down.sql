-- Fails if two brands recorded the same event_id (ids were global before).
CREATE TABLE spend_logs_old (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (amount > 0 AND amount <= 1000000000000000),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT      UNIQUE
);
INSERT INTO spend_logs_old (id, campaign_id, amount, occurred_at, received_at, event_id)
    SELECT id, campaign_id, amount, occurred_at, received_at, event_id FROM spend_logs;
DROP TABLE spend_logs;
ALTER TABLE spend_logs_old RENAME TO spend_logs;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
