// @generated automatically by Diesel CLI.
//
// The tables of both backends: migrations/postgres and migrations/sqlite describe the same shape,
// and this file is what `diesel print-schema` prints for the PostgreSQL one (checked by .ci/run;
// see migrations/README.md). Edit the migrations, not this file.

diesel::table! {
    api_token_brands (token_id, brand_id) {
        token_id -> Int8,
        brand_id -> Int8,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        name -> Text,
        scope -> Text,
        prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        brand_bound -> Bool,
    }
}

diesel::table! {
    audit_entries (id) {
        id -> Int8,
        at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Nullable<Int8>,
        actor_name -> Text,
        request_id -> Nullable<Text>,
        object_type -> Text,
        object_id -> Int8,
        brand_id -> Nullable<Int8>,
        action -> Text,
        changes -> Text,
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
    brand_spend_buckets (brand_id, bucket) {
        brand_id -> Int8,
        bucket -> Timestamp,
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
    campaign_spend_buckets (campaign_id, bucket) {
        campaign_id -> Int8,
        bucket -> Timestamp,
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
        lifetime_cap -> Nullable<Int8>,
        flight_start -> Nullable<Date>,
        flight_end -> Nullable<Date>,
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
        reverses_id -> Nullable<Int8>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    user_brands (user_id, brand_id) {
        user_id -> Int8,
        brand_id -> Int8,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        is_active -> Bool,
        role -> Text,
        brand_bound -> Bool,
        session_epoch -> Int8,
    }
}

diesel::joinable!(api_token_brands -> api_tokens (token_id));
diesel::joinable!(api_token_brands -> brands (brand_id));
diesel::joinable!(brand_spend -> brands (brand_id));
diesel::joinable!(brand_spend_buckets -> brands (brand_id));
diesel::joinable!(campaign_spend -> campaigns (campaign_id));
diesel::joinable!(campaign_spend_buckets -> campaigns (campaign_id));
diesel::joinable!(campaign_status_history -> campaigns (campaign_id));
diesel::joinable!(campaigns -> brands (brand_id));
diesel::joinable!(spend_logs -> campaigns (campaign_id));
diesel::joinable!(user_brands -> brands (brand_id));
diesel::joinable!(user_brands -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_token_brands,
    api_tokens,
    audit_entries,
    brand_spend,
    brand_spend_buckets,
    brands,
    campaign_spend,
    campaign_spend_buckets,
    campaign_status_history,
    campaigns,
    login_failures,
    spend_logs,
    user_brands,
    users,
);
