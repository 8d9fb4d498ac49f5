-- Fails if two brands recorded the same event_id (ids were global before).
DROP TRIGGER spend_logs_brand_of_campaign ON spend_logs;
DROP FUNCTION spend_logs_brand_of_campaign();
DROP INDEX spend_logs_brand_event;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_event_id_key UNIQUE (event_id);
ALTER TABLE spend_logs DROP COLUMN token_id;
ALTER TABLE spend_logs DROP COLUMN brand_id;
