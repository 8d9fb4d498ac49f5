DROP TABLE campaign_spend_buckets;
DROP TABLE brand_spend_buckets;
