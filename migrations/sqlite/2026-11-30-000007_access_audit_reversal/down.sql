-- Back to 000006 (see the PostgreSQL down migration): refused while reversals exist; users the
-- previous release would make superusers of are disabled, tokens it would widen revoked.
CREATE TEMP TABLE reversal_guard (spend_has_been_reversed INTEGER CHECK (spend_has_been_reversed = 0));
INSERT INTO reversal_guard SELECT count(*) FROM spend_logs WHERE reverses_id IS NOT NULL;
DROP TABLE reversal_guard;
DROP TABLE audit_entries;
CREATE TABLE spend_logs_old (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (amount > 0 AND amount <= 1000000000000000),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT,
    brand_id    BIGINT    NOT NULL,
    token_id    BIGINT
);
INSERT INTO spend_logs_old SELECT id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id FROM spend_logs;
DELETE FROM sqlite_sequence WHERE name = 'spend_logs_old';
INSERT INTO sqlite_sequence (name, seq) SELECT 'spend_logs_old', seq FROM sqlite_sequence WHERE name = 'spend_logs';
DROP TABLE spend_logs;
ALTER TABLE spend_logs_old RENAME TO spend_logs;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
CREATE UNIQUE INDEX spend_logs_brand_event ON spend_logs (brand_id, event_id);
UPDATE users SET is_active = FALSE WHERE role <> 'admin' OR brand_bound;
DROP TABLE user_brands;
ALTER TABLE users ADD COLUMN is_superuser BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users DROP COLUMN session_epoch;
ALTER TABLE users DROP COLUMN brand_bound;
ALTER TABLE users DROP COLUMN role;
DROP TABLE api_token_brands;
CREATE TABLE api_tokens_old (
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name         TEXT      NOT NULL,
    scope        TEXT      NOT NULL CHECK (scope IN ('ingest', 'admin')),
    prefix       TEXT      NOT NULL UNIQUE,
    token_hash   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);
INSERT INTO api_tokens_old
    SELECT id, name, CASE scope WHEN 'read' THEN 'ingest' ELSE scope END, prefix, token_hash, created_at,
        CASE WHEN scope = 'read' OR brand_bound OR expires_at IS NOT NULL
             THEN COALESCE(revoked_at, strftime('%Y-%m-%d %H:%M:%f', 'now')) ELSE revoked_at END
    FROM api_tokens;
DELETE FROM sqlite_sequence WHERE name = 'api_tokens_old';
INSERT INTO sqlite_sequence (name, seq) SELECT 'api_tokens_old', seq FROM sqlite_sequence WHERE name = 'api_tokens';
DROP TABLE api_tokens;
ALTER TABLE api_tokens_old RENAME TO api_tokens;
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
