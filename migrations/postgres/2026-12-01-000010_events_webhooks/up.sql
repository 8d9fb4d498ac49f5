-- Events, the change feed and webhooks (SPEC §9).

-- A campaign's state version: one more with every change of its state, so that a receiver can
-- drop an event that arrives after a newer one.
ALTER TABLE campaigns ADD COLUMN state_version BIGINT NOT NULL DEFAULT 0;
-- A brand's alert thresholds, whole percents 1–100, comma-separated in ascending order.
ALTER TABLE brands ADD COLUMN alert_thresholds TEXT NOT NULL DEFAULT '50,80,100';

-- The outbox: every event, written in the transaction of the change that causes it. `txid` is
-- the writing transaction's id: the change feed serves events in (txid, id) order and only those
-- whose transaction is older than every transaction still running (`pg_snapshot_xmin`), so an
-- event whose transaction commits late is never passed over by a cursor (see
-- `adbudget_db::repo::events`). `dedupe_key` makes a threshold fire once per subject, budget,
-- period and threshold. No foreign keys: events outlive what they describe.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    txid        BIGINT    NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_type  TEXT      NOT NULL,
    brand_id    BIGINT,
    campaign_id BIGINT,
    dedupe_key  TEXT      UNIQUE,
    data        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX events_feed ON events (txid, id);
CREATE INDEX events_created_at ON events (created_at);

-- Where the dispatcher has turned events into deliveries (one row).
CREATE TABLE event_dispatch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    txid     BIGINT NOT NULL,
    event_id BIGINT NOT NULL
);
INSERT INTO event_dispatch (id, txid, event_id) VALUES (1, 0, 0);

-- Webhook endpoints. `event_types` and `brand_ids` are comma-separated lists (null: all).
-- The signing secrets are kept as given to the receiver (`whsec_…`): signing needs them.
CREATE TABLE webhook_endpoints (
    id                  BIGSERIAL PRIMARY KEY,
    url                 TEXT      NOT NULL,
    description         TEXT      NOT NULL DEFAULT '',
    event_types         TEXT,
    brand_ids           TEXT,
    secret              TEXT      NOT NULL,
    previous_secret     TEXT,
    previous_secret_until TIMESTAMP,
    enabled             BOOLEAN   NOT NULL DEFAULT TRUE,
    disabled_reason     TEXT,
    last_success_at     TIMESTAMP,
    failing_since       TIMESTAMP,
    failure_streak      INTEGER   NOT NULL DEFAULT 0,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);

-- One delivery per (endpoint, event); each attempt is an apalis job, and its outcome a row of
-- webhook_attempts. `claimed_until` is the lease of the job now carrying the next attempt: a job
-- lost with a worker or with Redis is handed out again once it expires.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint_id     BIGINT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        BIGINT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status          TEXT      NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until   TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  BIGINT    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMP NOT NULL,
    status_code  INTEGER,
    latency_ms   BIGINT    NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
