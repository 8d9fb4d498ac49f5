DROP TABLE spend_log_horizon;
