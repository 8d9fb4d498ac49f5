ALTER TABLE spend_event_ids ALTER COLUMN event_id TYPE TEXT COLLATE "default";
-- Logs naming no campaign (none, unless something bypassed the deletes) and their event ids.
WITH gone AS (
    DELETE FROM spend_logs s
    WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = s.campaign_id)
    RETURNING brand_id, event_id
)
DELETE FROM spend_event_ids i USING gone g
WHERE i.brand_id = g.brand_id AND i.event_id = g.event_id;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_campaign_id_fkey
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE;
