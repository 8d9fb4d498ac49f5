// @generated automatically by Diesel CLI.
//
// The tables of both backends: migrations/postgres and migrations/sqlite describe the same shape,
// and this file is what `diesel print-schema` prints for the PostgreSQL one (checked by .ci/run;
// see migrations/README.md). Edit the migrations, not this file.

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        name -> Text,
        scope -> Text,
        prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    brand_spend (brand_id, period) {
        brand_id -> Int8,
        period -> Text,
        amount -> Int8,
    }
}

diesel::table! {
    brands (id) {
        id -> Int8,
        name -> Text,
        daily_budget -> Int8,
        monthly_budget -> Int8,
        timezone -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    campaign_spend (campaign_id, period) {
        campaign_id -> Int8,
        period -> Text,
        amount -> Int8,
    }
}

diesel::table! {
    campaign_status_history (id) {
        id -> Int8,
        campaign_id -> Int8,
        changed_at -> Timestamp,
        is_active -> Bool,
        pause_reasons -> Int4,
        cause -> Text,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Int8,
        brand_id -> Int8,
        name -> Text,
        daily_cap -> Nullable<Int8>,
        monthly_cap -> Nullable<Int8>,
        manually_paused -> Bool,
        dayparting -> Nullable<Text>,
        pause_reasons -> Int4,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    login_failures (key) {
        key -> Text,
        failures -> Int4,
        window_start -> Timestamp,
    }
}

diesel::table! {
    spend_logs (id) {
        id -> Int8,
        campaign_id -> Int8,
        amount -> Int8,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
        event_id -> Nullable<Text>,
        brand_id -> Int8,
        token_id -> Nullable<Int8>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        password_hash -> Text,
        is_superuser -> Bool,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        is_active -> Bool,
    }
}

diesel::joinable!(brand_spend -> brands (brand_id));
diesel::joinable!(campaign_spend -> campaigns (campaign_id));
diesel::joinable!(campaign_status_history -> campaigns (campaign_id));
diesel::joinable!(campaigns -> brands (brand_id));
diesel::joinable!(spend_logs -> campaigns (campaign_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    brand_spend,
    brands,
    campaign_spend,
    campaign_status_history,
    campaigns,
    login_failures,
    spend_logs,
    users,
);
