-- The job schedules as data (SPEC §6, issue "schedules as data"), as django-celery-beat keeps
-- them: every process seeds the missing rows from the ADBUDGET_SCHEDULE_* values at start, and
-- from then on these rows win; every beat follows a change within seconds.
CREATE TABLE job_schedules (
    id          BIGSERIAL PRIMARY KEY,
    job         TEXT      NOT NULL UNIQUE,
    -- Six fields, seconds first, UTC (validated by the parser the beat uses).
    cron        TEXT      NOT NULL,
    enabled     BOOLEAN   NOT NULL DEFAULT TRUE,
    updated_at  TIMESTAMP NOT NULL,
    -- Who changed it last (null: seeded).
    updated_by  TEXT,
    -- The newest tick a beat enqueued (for the job monitor).
    last_tick   TIMESTAMP
);

-- "Run now" requests: one run per (job, idempotency key), so a double click runs once.
CREATE TABLE job_runs (
    id              BIGSERIAL PRIMARY KEY,
    job             TEXT      NOT NULL,
    idempotency_key TEXT      NOT NULL,
    requested_by    TEXT      NOT NULL,
    requested_at    TIMESTAMP NOT NULL,
    UNIQUE (job, idempotency_key)
);
CREATE INDEX job_runs_requested_at ON job_runs (requested_at);
