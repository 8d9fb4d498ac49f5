-- Money is BIGINT micro-units (10^-6); timestamps are UTC text, as diesel writes NaiveDateTime.

CREATE TABLE brands (
    id             INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name           TEXT      NOT NULL UNIQUE,
    daily_budget   BIGINT    NOT NULL CHECK (daily_budget >= 0),
    monthly_budget BIGINT    NOT NULL CHECK (monthly_budget >= 0),
    timezone       TEXT      NOT NULL DEFAULT 'UTC',
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    brand_id        BIGINT    NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    name            TEXT      NOT NULL,
    daily_cap       BIGINT    CHECK (daily_cap >= 0),
    monthly_cap     BIGINT    CHECK (monthly_cap >= 0),
    manually_paused BOOLEAN   NOT NULL DEFAULT FALSE,
    -- Canonical JSON list of windows, NULL = no schedule (eligible at all hours).
    dayparting      TEXT,
    -- Bit mask of the rule's pause reasons; 0 = active. Written only by the enforcement code.
    pause_reasons   INTEGER   NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (brand_id, name)
);
CREATE INDEX campaigns_pause_reasons ON campaigns (pause_reasons);

CREATE TABLE spend_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    amount      BIGINT    NOT NULL CHECK (amount > 0),
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    event_id    TEXT      UNIQUE
);
CREATE INDEX spend_logs_campaign_occurred ON spend_logs (campaign_id, occurred_at);

-- Period accounting: spend per brand-local day ('YYYY-MM-DD') and month ('YYYY-MM').
-- Only ever incremented with INSERT .. ON CONFLICT DO UPDATE SET amount = amount + excluded.amount.
CREATE TABLE brand_spend (
    brand_id BIGINT NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    period   TEXT   NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (brand_id, period)
);

CREATE TABLE campaign_spend (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    period      TEXT   NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, period)
);
CREATE INDEX campaign_spend_period ON campaign_spend (period);

CREATE TABLE campaign_status_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    campaign_id   BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    changed_at    TIMESTAMP NOT NULL,
    is_active     BOOLEAN   NOT NULL,
    pause_reasons INTEGER   NOT NULL,
    cause         TEXT      NOT NULL
);
CREATE INDEX campaign_status_history_campaign ON campaign_status_history (campaign_id, id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name         TEXT      NOT NULL,
    scope        TEXT      NOT NULL CHECK (scope IN ('ingest', 'admin')),
    -- The public first characters of the token, to find its row; the secret is only kept hashed.
    prefix       TEXT      NOT NULL UNIQUE,
    token_hash   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username      TEXT      NOT NULL UNIQUE,
    password_hash TEXT      NOT NULL,
    is_superuser  BOOLEAN   NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP
);
