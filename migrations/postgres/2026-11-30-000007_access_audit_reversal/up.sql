-- SPEC §11 (access and the audit trail) and §3 (spend reversal).

-- Tokens: a `read` scope beside `ingest` and `admin`, an optional expiry, the (coarse) time of last
-- use, and an optional binding to brands. `brand_bound` says whether the binding applies: a token
-- bound to one brand that is then deleted is bound to none, never to all of them.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'ingest', 'admin'));
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN brand_bound BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE api_token_brands (
    token_id BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, brand_id)
);
CREATE INDEX api_token_brands_brand ON api_token_brands (brand_id);

-- Users: a role instead of "superuser" (every existing user was one: they become admins), an
-- optional binding to brands, and a session epoch: every session carries the epoch it began in,
-- and logout, a password change or disabling the user moves it on, ending them all at once.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE users ADD COLUMN brand_bound BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users DROP COLUMN is_superuser;
ALTER TABLE users ALTER COLUMN role DROP DEFAULT;
CREATE TABLE user_brands (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, brand_id)
);
CREATE INDEX user_brands_brand ON user_brands (brand_id);

-- Spend reversal: a compensating spend log (negative amount) naming the log it reverses, with the
-- reason. A log is reversed at most once (the unique index); a reversal is never reversed.
ALTER TABLE spend_logs ADD COLUMN reverses_id BIGINT;
ALTER TABLE spend_logs ADD COLUMN reason TEXT;
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_amount_check;
-- NOT VALID: checked for every new row at once, without scanning (and locking) the existing ones,
-- which the previous constraint already held to `amount > 0`. Validate at leisure, as for 000004:
--   ALTER TABLE spend_logs VALIDATE CONSTRAINT spend_logs_amount_sign;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_amount_sign CHECK (
    (reverses_id IS NULL AND amount > 0 AND reason IS NULL)
    OR (reverses_id IS NOT NULL AND amount < 0 AND amount >= -1000000000000000 AND reason IS NOT NULL))
    NOT VALID;
-- Partial: the spend path's inserts (never reversals) write no entry into it. Built in the
-- migration's transaction, it reads the whole table once and holds writes back meanwhile (seconds
-- per ten million spend logs); on a larger table, build it first by hand with CREATE UNIQUE INDEX
-- CONCURRENTLY and the same definition, and this statement finds it.
CREATE UNIQUE INDEX IF NOT EXISTS spend_logs_reverses ON spend_logs (reverses_id)
    WHERE reverses_id IS NOT NULL;

-- The audit trail: one entry per change, written in the change's transaction. Entries name their
-- objects by id without foreign keys (they outlive what they describe) and carry the object's
-- brand, so that a brand-bound reader sees its brands' entries. Append-only: the database
-- refuses to change or delete an entry.
CREATE TABLE audit_entries (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMP NOT NULL,
    actor_kind  TEXT      NOT NULL CHECK (actor_kind IN ('user', 'token', 'cli')),
    actor_id    BIGINT,
    actor_name  TEXT      NOT NULL,
    request_id  TEXT,
    object_type TEXT      NOT NULL,
    object_id   BIGINT    NOT NULL,
    brand_id    BIGINT,
    action      TEXT      NOT NULL,
    -- JSON: {"field": {"old": ..., "new": ...}, ...}
    changes     TEXT      NOT NULL
);
CREATE INDEX audit_entries_object ON audit_entries (object_type, object_id, id);
CREATE INDEX audit_entries_brand ON audit_entries (brand_id, id);
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
