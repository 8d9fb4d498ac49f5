CREATE INDEX campaigns_pause_reasons ON campaigns (pause_reasons);
