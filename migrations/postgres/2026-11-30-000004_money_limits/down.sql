ALTER TABLE brands DROP CONSTRAINT brands_daily_budget_limit;
ALTER TABLE brands DROP CONSTRAINT brands_monthly_budget_limit;
ALTER TABLE campaigns DROP CONSTRAINT campaigns_daily_cap_limit;
ALTER TABLE campaigns DROP CONSTRAINT campaigns_monthly_cap_limit;
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_amount_limit;
ALTER TABLE brand_spend DROP CONSTRAINT brand_spend_amount_limit;
ALTER TABLE campaign_spend DROP CONSTRAINT campaign_spend_amount_limit;
