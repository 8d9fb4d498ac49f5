CREATE INDEX campaign_spend_period ON campaign_spend (period);
