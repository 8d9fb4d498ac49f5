DROP TABLE campaign_spend_buckets;
DROP TABLE brand_spend_buckets;
ALTER TABLE brand_spend RESET (fillfactor);
ALTER TABLE campaign_spend RESET (fillfactor);
