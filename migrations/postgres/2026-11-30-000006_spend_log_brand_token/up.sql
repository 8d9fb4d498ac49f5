-- SPEC §3: a spend log records its brand and the token that posted it, and `event_id` is unique
-- per brand: two brands' connectors never collide on an id, and no token can take ids away from
-- another brand's connector.
--
-- brand_id is the campaign's brand (a campaign never changes brand), backfilled here; it has no
-- foreign key of its own: the campaign's already cascades, and a second check on every insert
-- would cost the spend path for nothing. token_id is NULL for spend recorded without a token
-- (`adbudget log-spend`) and for every row written before this migration; tokens are revoked,
-- never deleted, so it always names one.
ALTER TABLE spend_logs ADD COLUMN brand_id BIGINT;
UPDATE spend_logs AS s SET brand_id = c.brand_id FROM campaigns AS c WHERE c.id = s.campaign_id;
ALTER TABLE spend_logs ALTER COLUMN brand_id SET NOT NULL;
ALTER TABLE spend_logs ADD COLUMN token_id BIGINT;
ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_event_id_key;
CREATE UNIQUE INDEX spend_logs_brand_event ON spend_logs (brand_id, event_id);

-- A rolling upgrade runs this migration while pods of the previous release still record spend
-- without brand_id: fill it from the campaign for them, so their inserts keep working until the
-- last one is replaced. (The WHEN clause keeps the trigger out of this release's own inserts.) A
-- later migration drops it.
CREATE FUNCTION spend_logs_brand_of_campaign() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT brand_id INTO NEW.brand_id FROM campaigns WHERE id = NEW.campaign_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER spend_logs_brand_of_campaign BEFORE INSERT ON spend_logs
    FOR EACH ROW WHEN (NEW.brand_id IS NULL) EXECUTE FUNCTION spend_logs_brand_of_campaign();
