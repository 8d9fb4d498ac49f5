-- See the PostgreSQL version.
INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT campaign_id, 'lifetime', sum(amount)
FROM campaign_spend
WHERE period LIKE '____-__'
GROUP BY campaign_id;

DELETE FROM campaign_spend WHERE period = 'carried';

ALTER TABLE brands DROP COLUMN carried_before;
