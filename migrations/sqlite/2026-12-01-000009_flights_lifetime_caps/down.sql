DELETE FROM campaign_spend WHERE period = 'lifetime';
-- The two reasons' bits (64: campaign_lifetime_cap, 128: flight) mean nothing to the code before;
-- the next enforce_budgets run sets the states from the remaining reasons.
UPDATE campaigns SET pause_reasons = pause_reasons & 63 WHERE pause_reasons >= 64;
DROP TRIGGER campaigns_flight_order_update;
DROP TRIGGER campaigns_flight_order_insert;
ALTER TABLE campaigns DROP COLUMN flight_end;
ALTER TABLE campaigns DROP COLUMN flight_start;
ALTER TABLE campaigns DROP COLUMN lifetime_cap;
