DROP TABLE users;
DROP TABLE api_tokens;
DROP TABLE campaign_status_history;
DROP TABLE campaign_spend;
DROP TABLE brand_spend;
DROP TABLE spend_logs;
DROP TABLE campaigns;
DROP TABLE brands;
