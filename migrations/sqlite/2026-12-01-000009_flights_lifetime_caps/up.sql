-- Flights and lifetime caps (SPEC §3, §4): a campaign may run from a start date to an end date
-- (brand-local, inclusive, each optional) with a total budget over all time. Lifetime spend is
-- kept like the period totals, as the campaign's `campaign_spend` row of period 'lifetime',
-- incremented by the spend path's upserts and lowered by reversals; never summed from spend logs.
--
-- SQLite adds columns with a CHECK of their own but no table constraint: the flight's order is
-- checked by triggers (as migration 000004 does for the other limits on campaigns).
ALTER TABLE campaigns ADD COLUMN lifetime_cap BIGINT
    CHECK (lifetime_cap >= 0 AND lifetime_cap <= 1000000000000000);
ALTER TABLE campaigns ADD COLUMN flight_start DATE;
ALTER TABLE campaigns ADD COLUMN flight_end DATE;

CREATE TRIGGER campaigns_flight_order_insert BEFORE INSERT ON campaigns
WHEN NEW.flight_end < NEW.flight_start
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns_flight_order');
END;

CREATE TRIGGER campaigns_flight_order_update BEFORE UPDATE OF flight_start, flight_end ON campaigns
WHEN NEW.flight_end < NEW.flight_start
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: campaigns_flight_order');
END;

-- The lifetime totals of the spend recorded before (reversals included).
INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT campaign_id, 'lifetime', sum(amount) FROM spend_logs GROUP BY campaign_id;
