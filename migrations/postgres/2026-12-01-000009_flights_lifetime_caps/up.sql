-- Flights and lifetime caps (SPEC §3, §4): a campaign may run from a start date to an end date
-- (brand-local, inclusive, each optional) with a total budget over all time. Lifetime spend is
-- kept like the period totals, as the campaign's `campaign_spend` row of period 'lifetime',
-- incremented by the spend path's upserts and lowered by reversals; never summed from spend logs.
ALTER TABLE campaigns ADD COLUMN lifetime_cap BIGINT
    CONSTRAINT campaigns_lifetime_cap_limit CHECK (lifetime_cap >= 0 AND lifetime_cap <= 1000000000000000);
ALTER TABLE campaigns ADD COLUMN flight_start DATE;
ALTER TABLE campaigns ADD COLUMN flight_end DATE;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_flight_order CHECK (flight_end >= flight_start);

-- The lifetime totals of the spend recorded before (reversals included).
INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT campaign_id, 'lifetime', sum(amount) FROM spend_logs GROUP BY campaign_id;
