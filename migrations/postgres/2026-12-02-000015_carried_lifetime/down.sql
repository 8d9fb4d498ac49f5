-- Every campaign's lifetime row again: the sum of its month rows (those before the mark are
-- still stored; `lifetime_carried` is their sum). Any written since by an older build first.
DELETE FROM campaign_spend WHERE period = 'lifetime';
INSERT INTO campaign_spend (campaign_id, period, amount)
SELECT campaign_id, 'lifetime', CAST(sum(amount) AS BIGINT)
FROM campaign_spend
WHERE period LIKE '____-__'
GROUP BY campaign_id;

ALTER TABLE campaigns DROP COLUMN lifetime_carried;
ALTER TABLE brands DROP COLUMN carried_before;
