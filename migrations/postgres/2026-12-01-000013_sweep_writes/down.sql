DELETE FROM campaign_status_history h WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = h.campaign_id);
ALTER TABLE campaign_status_history ADD CONSTRAINT campaign_status_history_campaign_id_fkey
    FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE;
ALTER TABLE campaigns RESET (fillfactor);
CREATE INDEX campaigns_pause_reasons ON campaigns (pause_reasons);
