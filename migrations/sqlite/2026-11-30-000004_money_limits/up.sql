-- Money limits (SPEC §3): an amount, a budget, a cap and a period total are at most 10^15
-- micro-units. The application refuses what would exceed them (a 422 naming the field); these
-- are the database's own guarantee that nothing past them is ever stored.
--
-- SQLite cannot add a CHECK to an existing table. The tables nothing references (the period
-- totals, the spend logs) are rebuilt with the constraint; brands and campaigns are referenced
-- with ON DELETE CASCADE, so dropping them to rebuild would delete their children: triggers
-- enforce the same condition there. A database holding rows past the limit (the old limit allowed
-- 10^18 micro-units per event) fails this migration with "CHECK constraint failed" naming the
-- table: such rows must be reversed or removed by hand first.

CREATE TABLE brand_spend_new (
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    period   TEXT   NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount >= 0 AND amount <= 1000000000000000),
    PRIMARY KEY (brand_id, period)
);
INSERT INTO brand_spend_new (brand_id, period, amount) SELECT brand_id, period, amount FROM brand_spend;
DROP TABLE brand_spend;
ALTER TABLE brand_spend_new RENAME TO brand_spend;

CREATE TABLE campaign_spend_new (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    period      TEXT   NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount >= 0 AND amount <= 1000000000000000),
    PRIMARY KEY (campaign_id, period)
);
INSERT INTO campaign_spend_new (campaign_id, period, amount)
    SELECT campaign_id, period, amount FROM campaign_spend;
DROP TABLE campaign_spend;
ALTER TABLE campaign_spend_new RENAME TO campaign_spend;

CREATE TABLE spend_logs_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (amount > 0 AND amount <= 1000000000000000),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT      UNIQUE
);
INSERT INTO spend_logs_new (id, campaign_id, amount, occurred_at, received_at, event_id)
    SELECT id, campaign_id, amount, occurred_at, received_at, event_id FROM spend_logs;
DROP TABLE spend_logs;
ALTER TABLE spend_logs_new RENAME TO spend_logs;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);

CREATE TRIGGER brands_budget_limit_insert BEFORE INSERT ON brands
WHEN NEW.daily_budget > 1000000000000000 OR NEW.monthly_budget > 1000000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: brands budget limit'); END;
CREATE TRIGGER brands_budget_limit_update BEFORE UPDATE ON brands
WHEN NEW.daily_budget > 1000000000000000 OR NEW.monthly_budget > 1000000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: brands budget limit'); END;
CREATE TRIGGER campaigns_cap_limit_insert BEFORE INSERT ON campaigns
WHEN NEW.daily_cap > 1000000000000000 OR NEW.monthly_cap > 1000000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns cap limit'); END;
CREATE TRIGGER campaigns_cap_limit_update BEFORE UPDATE ON campaigns
WHEN NEW.daily_cap > 1000000000000000 OR NEW.monthly_cap > 1000000000000000
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns cap limit'); END;
