-- SPEC §11 (access and the audit trail) and §3 (spend reversal); see the PostgreSQL migration of
-- the same name. SQLite cannot change a table's constraints: api_tokens and spend_logs are
-- rebuilt. Their AUTOINCREMENT high-water marks are carried over, so that no id of a deleted row
-- is ever handed out again.

-- Tokens: a `read` scope, expiry, last use, an optional binding to brands.
CREATE TABLE api_tokens_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name         TEXT      NOT NULL,
    scope        TEXT      NOT NULL CHECK (scope IN ('read', 'ingest', 'admin')),
    prefix       TEXT      NOT NULL UNIQUE,
    token_hash   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP,
    expires_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    brand_bound  BOOLEAN   NOT NULL DEFAULT FALSE
);
INSERT INTO api_tokens_new (id, name, scope, prefix, token_hash, created_at, revoked_at)
    SELECT id, name, scope, prefix, token_hash, created_at, revoked_at FROM api_tokens;
DELETE FROM sqlite_sequence WHERE name = 'api_tokens_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'api_tokens_new', seq FROM sqlite_sequence WHERE name = 'api_tokens';
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
CREATE TABLE api_token_brands (
    token_id BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, brand_id)
);
CREATE INDEX api_token_brands_brand ON api_token_brands (brand_id);

-- Users: a role (every existing user was a superuser: they become admins), a binding to brands,
-- a session epoch.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE users ADD COLUMN brand_bound BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users DROP COLUMN is_superuser;
CREATE TABLE user_brands (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, brand_id)
);
CREATE INDEX user_brands_brand ON user_brands (brand_id);

-- Spend reversal: a compensating spend log naming the log it reverses.
CREATE TABLE spend_logs_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (
        (reverses_id IS NULL AND amount > 0 AND amount <= 1000000000000000 AND reason IS NULL)
        OR (reverses_id IS NOT NULL AND amount < 0 AND amount >= -1000000000000000 AND reason IS NOT NULL)),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT,
    brand_id    BIGINT    NOT NULL,
    token_id    BIGINT,
    reverses_id BIGINT,
    reason      TEXT
);
INSERT INTO spend_logs_new (id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id)
    SELECT id, campaign_id, amount, occurred_at, received_at, event_id, brand_id, token_id FROM spend_logs;
DELETE FROM sqlite_sequence WHERE name = 'spend_logs_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'spend_logs_new', seq FROM sqlite_sequence WHERE name = 'spend_logs';
DROP TABLE spend_logs;
ALTER TABLE spend_logs_new RENAME TO spend_logs;
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);
CREATE UNIQUE INDEX spend_logs_brand_event ON spend_logs (brand_id, event_id);
-- Partial: the spend path's inserts (never reversals) write no entry into it.
CREATE UNIQUE INDEX spend_logs_reverses ON spend_logs (reverses_id) WHERE reverses_id IS NOT NULL;

-- The audit trail, append-only.
CREATE TABLE audit_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at          TIMESTAMP NOT NULL,
    actor_kind  TEXT      NOT NULL CHECK (actor_kind IN ('user', 'token', 'cli')),
    actor_id    BIGINT,
    actor_name  TEXT      NOT NULL,
    request_id  TEXT,
    object_type TEXT      NOT NULL,
    object_id   BIGINT    NOT NULL,
    brand_id    BIGINT,
    action      TEXT      NOT NULL,
    changes     TEXT      NOT NULL
);
CREATE INDEX audit_entries_object ON audit_entries (object_type, object_id, id);
CREATE INDEX audit_entries_brand ON audit_entries (brand_id, id);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
