-- Failed admin logins per key ('user:NAME' or 'ip:ADDRESS') in a fixed window, shared by every
-- API replica. Rows older than the window are deleted as new failures arrive, so the table holds
-- at most the keys that failed within the last window.
CREATE TABLE login_failures (
    key          TEXT      PRIMARY KEY,
    failures     INTEGER   NOT NULL,
    window_start TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_window_start ON login_failures (window_start);
