DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE event_dispatch;
DROP TABLE events;
ALTER TABLE brands DROP COLUMN alert_thresholds;
ALTER TABLE campaigns DROP COLUMN state_version;
