-- SPEC §3: a spend log records its brand and the token that posted it, and `event_id` is unique
-- per brand (see the PostgreSQL migration of the same name). SQLite cannot change a table's
-- constraints: the table is rebuilt, its rows copied with their campaign's brand (a row whose
-- campaign is gone would get no brand and fail the copy, loudly). SQLite runs in one process:
-- stop it, migrate, start the new release (no rolling upgrade to bridge, unlike PostgreSQL).
CREATE TABLE spend_logs_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (amount > 0 AND amount <= 1000000000000000),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT,
    brand_id    BIGINT    NOT NULL,
    token_id    BIGINT
);
INSERT INTO spend_logs_new (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id)
    SELECT s.id, s.campaign_id, s.amount, s.occurred_at, s.received_at, s.event_id, c.brand_id
    FROM spend_logs AS s LEFT JOIN campaigns AS c ON c.id = s.campaign_id;
DROP TABLE spend_logs;
ALTER TABLE spend_logs_new RENAME TO spend_logs;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
CREATE UNIQUE INDEX spend_logs_brand_event ON spend_logs (brand_id, event_id);
