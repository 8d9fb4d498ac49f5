-- See the PostgreSQL version.
ALTER TABLE brands ADD COLUMN carried_before TEXT NOT NULL DEFAULT '';

UPDATE brands SET carried_before = strftime('%Y-%m', 'now', 'start of month', '-1 month');

INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT s.campaign_id, 'carried', sum(s.amount)
FROM campaign_spend AS s
JOIN campaigns AS c ON c.id = s.campaign_id
JOIN brands AS b ON b.id = c.brand_id
WHERE s.period LIKE '____-__' AND s.period < b.carried_before
GROUP BY s.campaign_id;

DELETE FROM campaign_spend WHERE period = 'lifetime';
