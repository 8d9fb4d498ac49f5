-- Spend per 5-minute bucket (SPEC §10: pacing and the spend series are computed from these, never
-- by scanning spend logs). A bucket is keyed by its start in UTC: every timezone in use today is
-- offset from UTC by a multiple of 5 minutes, so a UTC bucket is exactly a brand-local one, a
-- repeated DST hour keeps its two hours apart, and a brand's timezone change moves nothing.
-- Kept by the spend path's upserts in the same statement as the period totals (a data-modifying
-- CTE), lowered by reversals; the sweeps never read them (their own tables keep the period
-- totals' index as small as it was).
CREATE TABLE brand_spend_buckets (
    brand_id BIGINT    NOT NULL REFERENCES brands (id) ON DELETE CASCADE,
    bucket   TIMESTAMP NOT NULL,
    amount   BIGINT    NOT NULL CHECK (amount >= 0 AND amount <= 1000000000000000),
    PRIMARY KEY (brand_id, bucket)
) WITH (fillfactor = 50);

CREATE TABLE campaign_spend_buckets (
    campaign_id BIGINT    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    bucket      TIMESTAMP NOT NULL,
    amount      BIGINT    NOT NULL CHECK (amount >= 0 AND amount <= 1000000000000000),
    PRIMARY KEY (campaign_id, bucket)
) WITH (fillfactor = 50);

-- Every spend updates a brand's and a campaign's rows of the current day, month and bucket in
-- place, many times a second: half of each page is left free so that those updates stay on their
-- page (HOT updates: no new index entry, no bloat of the primary key). Existing pages of the period
-- totals keep their layout until rewritten; new ones follow the setting.
ALTER TABLE brand_spend SET (fillfactor = 50);
ALTER TABLE campaign_spend SET (fillfactor = 50);

-- The spend recorded before this migration, bucketed (reversals included: they carry the
-- original's occurred_at).
INSERT INTO brand_spend_buckets (brand_id, bucket, amount)
SELECT brand_id, date_bin('5 minutes', occurred_at, TIMESTAMP '2000-01-01'), sum(amount)
FROM spend_logs GROUP BY 1, 2;

INSERT INTO campaign_spend_buckets (campaign_id, bucket, amount)
SELECT campaign_id, date_bin('5 minutes', occurred_at, TIMESTAMP '2000-01-01'), sum(amount)
FROM spend_logs GROUP BY 1, 2;
