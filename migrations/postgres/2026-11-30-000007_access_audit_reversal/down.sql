-- Back to 000006. The previous release knows no reversal (its totals would not match its spend
-- logs), no role and no brand binding: refuse while reversals exist, and rather than hand every
-- viewer, operator and bound user the superuser it would make of them, disable them; revoke the
-- tokens it would widen (read, bound or expiring).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM spend_logs WHERE reverses_id IS NOT NULL) THEN
        RAISE EXCEPTION 'spend has been reversed: the previous release cannot represent reversals';
    END IF;
END
$$;
DROP TABLE audit_entries;
DROP FUNCTION audit_entries_append_only();
DROP INDEX spend_logs_reverses;
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_amount_sign;
ALTER TABLE spend_logs ADD CONSTRAINT spend_logs_amount_check CHECK (amount > 0);
ALTER TABLE spend_logs DROP COLUMN reason;
ALTER TABLE spend_logs DROP COLUMN reverses_id;
UPDATE users SET is_active = FALSE WHERE role <> 'admin' OR brand_bound;
DROP TABLE user_brands;
ALTER TABLE users ADD COLUMN is_superuser BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users DROP COLUMN session_epoch;
ALTER TABLE users DROP COLUMN brand_bound;
ALTER TABLE users DROP COLUMN role;
UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now() AT TIME ZONE 'UTC'), scope = 'ingest'
    WHERE scope = 'read' OR brand_bound OR expires_at IS NOT NULL;
DROP TABLE api_token_brands;
ALTER TABLE api_tokens DROP COLUMN brand_bound;
ALTER TABLE api_tokens DROP COLUMN last_used_at;
ALTER TABLE api_tokens DROP COLUMN expires_at;
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('ingest', 'admin'));
