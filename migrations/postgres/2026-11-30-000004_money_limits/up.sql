-- Money limits (SPEC §3): an amount, a budget, a cap and a period total are at most 10^15
-- micro-units. The application refuses what would exceed them (a 422 naming the field); these
-- constraints are the database's own guarantee that nothing past them is ever stored, and keep
-- every sum of two totals far inside BIGINT.
--
-- NOT VALID: rows written before this migration (the old limit allowed 10^18 per event) are not
-- checked, so an upgrade never fails on them; every new or changed row is. To check old rows too:
--   ALTER TABLE brand_spend VALIDATE CONSTRAINT brand_spend_amount_limit;  (and so on)
-- which names the first offending row's table if there is one.
ALTER TABLE brands ADD CONSTRAINT brands_daily_budget_limit CHECK (daily_budget <= 1000000000000000) NOT VALID;
ALTER TABLE brands ADD CONSTRAINT brands_monthly_budget_limit CHECK (monthly_budget <= 1000000000000000) NOT VALID;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_daily_cap_limit CHECK (daily_cap <= 1000000000000000) NOT VALID;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_monthly_cap_limit CHECK (monthly_cap <= 1000000000000000) NOT VALID;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_amount_limit CHECK (amount <= 1000000000000000) NOT VALID;
ALTER TABLE brand_spend ADD CONSTRAINT brand_spend_amount_limit
    CHECK (amount >= 0 AND amount <= 1000000000000000) NOT VALID;
ALTER TABLE campaign_spend ADD CONSTRAINT campaign_spend_amount_limit
    CHECK (amount >= 0 AND amount <= 1000000000000000) NOT VALID;
