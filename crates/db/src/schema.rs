// The tables of both backends (migrations/postgres and migrations/sqlite describe the same shape).

diesel::table! {
    brands (id) {
        id -> BigInt,
        name -> Text,
        daily_budget -> BigInt,
        monthly_budget -> BigInt,
        timezone -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> BigInt,
        brand_id -> BigInt,
        name -> Text,
        daily_cap -> Nullable<BigInt>,
        monthly_cap -> Nullable<BigInt>,
        manually_paused -> Bool,
        dayparting -> Nullable<Text>,
        pause_reasons -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    spend_logs (id) {
        id -> BigInt,
        campaign_id -> BigInt,
        amount -> BigInt,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
        event_id -> Nullable<Text>,
    }
}

diesel::table! {
    brand_spend (brand_id, period) {
        brand_id -> BigInt,
        period -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    campaign_spend (campaign_id, period) {
        campaign_id -> BigInt,
        period -> Text,
        amount -> BigInt,
    }
}

diesel::table! {
    campaign_status_history (id) {
        id -> BigInt,
        campaign_id -> BigInt,
        changed_at -> Timestamp,
        is_active -> Bool,
        pause_reasons -> Integer,
        cause -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        scope -> Text,
        prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        is_superuser -> Bool,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        is_active -> Bool,
    }
}

diesel::table! {
    login_failures (key) {
        key -> Text,
        failures -> Integer,
        window_start -> Timestamp,
    }
}

diesel::joinable!(campaigns -> brands (brand_id));
diesel::joinable!(spend_logs -> campaigns (campaign_id));
diesel::joinable!(brand_spend -> brands (brand_id));
diesel::joinable!(campaign_spend -> campaigns (campaign_id));
diesel::joinable!(campaign_status_history -> campaigns (campaign_id));

diesel::allow_tables_to_appear_in_same_query!(
    brands,
    campaigns,
    spend_logs,
    brand_spend,
    campaign_spend,
    campaign_status_history,
    api_tokens,
    users,
    login_failures,
);
