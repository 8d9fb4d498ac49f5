-- See the PostgreSQL version.
ALTER TABLE brands ADD COLUMN carried_before TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN lifetime_carried BIGINT NOT NULL DEFAULT 0
    CHECK (lifetime_carried >= 0 AND lifetime_carried <= 1000000000000000);

UPDATE brands SET carried_before = strftime('%Y-%m', 'now', 'start of month', '-1 month')
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
