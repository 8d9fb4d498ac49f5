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
        alert_thresholds -> Text,
        carried_before -> Text,
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
        state_version -> Int8,
        lifetime_carried -> Int8,
    }
}

diesel::table! {
    event_dispatch (id) {
        id -> Int4,
        txid -> Int8,
        event_id -> Int8,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        txid -> Int8,
        event_type -> Text,
        brand_id -> Nullable<Int8>,
        campaign_id -> Nullable<Int8>,
        dedupe_key -> Nullable<Text>,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    job_runs (id) {
        id -> Int8,
        job -> Text,
        idempotency_key -> Text,
        requested_by -> Text,
        requested_at -> Timestamp,
    }
}

diesel::table! {
    job_schedules (id) {
        id -> Int8,
        job -> Text,
        cron -> Text,
        enabled -> Bool,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
        last_tick -> Nullable<Timestamp>,
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
    spend_event_ids (brand_id, event_id) {
        brand_id -> Int8,
        event_id -> Text,
        spend_log_id -> Int8,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    spend_log_horizon (id) {
        id -> Bool,
        kept_from -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    spend_logs (id, occurred_at) {
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

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        delivery_id -> Int8,
        attempted_at -> Timestamp,
        status_code -> Nullable<Int4>,
        latency_ms -> Int8,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Int8,
        endpoint_id -> Int8,
        event_id -> Int8,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Int8,
        url -> Text,
        description -> Text,
        event_types -> Nullable<Text>,
        brand_ids -> Nullable<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        last_success_at -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        failure_streak -> Int4,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(api_token_brands -> api_tokens (token_id));
diesel::joinable!(api_token_brands -> brands (brand_id));
diesel::joinable!(brand_spend -> brands (brand_id));
diesel::joinable!(brand_spend_buckets -> brands (brand_id));
diesel::joinable!(campaign_spend -> campaigns (campaign_id));
diesel::joinable!(campaign_spend_buckets -> campaigns (campaign_id));
diesel::joinable!(campaigns -> brands (brand_id));
diesel::joinable!(user_brands -> brands (brand_id));
diesel::joinable!(user_brands -> users (user_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(webhook_deliveries -> events (event_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));

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
    event_dispatch,
    events,
    job_runs,
    job_schedules,
    login_failures,
    spend_event_ids,
    spend_log_horizon,
    spend_logs,
    user_brands,
    users,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
);
