-- A campaign's lifetime total without a row the spend path writes per batch (issue #16's bound:
-- the 'lifetime' rows' upserts, one per campaign and batch, under the brand locks, cost 14 % of
-- PostgreSQL's batch ingestion; BENCHMARKS.md).
--
-- Each brand gets a mark, `carried_before` (a month key, '' for none); each campaign carries its
-- spend of the months before it in `lifetime_carried`, read with the campaign's row, which the
-- spend path reads anyway. Its spend from the mark on is its month rows, which the spend path
-- writes anyway. A campaign's lifetime is `lifetime_carried` plus its month rows from the mark on.
-- Only an event of a month before the mark adds to `lifetime_carried` on the spend path; the
-- resets fold the months that ended into it and move the mark (repo::lifetime). Any mark keeps
-- the total exact; a recent one keeps it cheap to read.
ALTER TABLE brands ADD COLUMN carried_before TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN lifetime_carried BIGINT NOT NULL DEFAULT 0
    CONSTRAINT campaigns_lifetime_carried_limit
    CHECK (lifetime_carried >= 0 AND lifetime_carried <= 1000000000000000);

-- The month before the current UTC month: no brand-local month has begun after its start yet
-- (offsets are under a day), so it is at most every brand's current month. Not for a brand whose
-- budgets or campaigns' caps were stored before migration 000004's limits (NOT VALID: an update
-- of such a row would be refused): its mark stays '' (nothing carried; its lifetimes are read
-- over all its months), as the fold leaves it (repo::lifetime).
UPDATE brands SET carried_before = to_char((now() AT TIME ZONE 'UTC') - interval '1 month', 'YYYY-MM')
WHERE daily_budget <= 1000000000000000 AND monthly_budget <= 1000000000000000
  AND NOT EXISTS (SELECT 1 FROM campaigns AS o WHERE o.brand_id = brands.id
                  AND (o.daily_cap > 1000000000000000 OR o.monthly_cap > 1000000000000000));

UPDATE campaigns AS c SET lifetime_carried = m.amount
FROM (
    SELECT s.campaign_id, CAST(sum(s.amount) AS BIGINT) AS amount
    FROM campaign_spend AS s
    JOIN campaigns AS c2 ON c2.id = s.campaign_id
    JOIN brands AS b ON b.id = c2.brand_id
    WHERE s.period LIKE '____-__' AND s.period < b.carried_before
    GROUP BY s.campaign_id
) AS m
WHERE c.id = m.campaign_id;

DELETE FROM campaign_spend WHERE period = 'lifetime';
