ALTER TABLE spend_event_ids ALTER COLUMN event_id TYPE TEXT COLLATE "default";
DELETE FROM spend_logs s WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = s.campaign_id);
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_campaign_id_fkey
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE;
