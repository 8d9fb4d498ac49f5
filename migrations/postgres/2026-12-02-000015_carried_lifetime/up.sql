-- A campaign's lifetime total without a row the spend path writes per batch (issue #16's bound:
-- the 'lifetime' rows' upserts, one per campaign and batch, under the brand locks, cost 14 % of
-- PostgreSQL's batch ingestion; BENCHMARKS.md).
--
-- Each brand gets a mark, `carried_before` (a month key, '' for none): its campaigns' spend in
-- the months before it is kept as one `campaign_spend` row of period 'carried', their spend from
-- it on is their month rows, which the spend path writes anyway. A campaign's lifetime is
-- 'carried' plus its month rows from the mark on. Only an event of a month before the mark adds
-- to 'carried' on the spend path; the resets fold the months that ended into it and move
-- the mark (repo::lifetime). Any mark keeps the total exact; a recent one keeps it cheap.
ALTER TABLE brands ADD COLUMN carried_before TEXT NOT NULL DEFAULT '';

-- The month before the current UTC month: no brand-local month has begun after its start yet
-- (offsets are under a day), so it is at most every brand's current month.
UPDATE brands SET carried_before = to_char((now() AT TIME ZONE 'UTC') - interval '1 month', 'YYYY-MM');

INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT s.campaign_id, 'carried', sum(s.amount)::bigint
FROM campaign_spend AS s
JOIN campaigns AS c ON c.id = s.campaign_id
JOIN brands AS b ON b.id = c.brand_id
WHERE s.period LIKE '____-__' AND s.period < b.carried_before
GROUP BY s.campaign_id;

DELETE FROM campaign_spend WHERE period = 'lifetime';
