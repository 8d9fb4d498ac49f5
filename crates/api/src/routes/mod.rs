pub mod audit;
pub mod brands;
pub mod campaigns;
pub mod events;
pub mod health;
pub mod jobs;
pub mod pacing;
pub mod spend;
pub mod webhooks;

use actix_web::web;

use crate::extract::{BodyLimit, SPEND_BATCH_LIMIT, SPEND_EVENT_LIMIT};

/// The `/api/v1` routes.
pub fn api_v1(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/brands")
            .route(web::get().to(brands::list))
            .route(web::post().to(brands::create)),
    )
    .service(
        web::resource("/brands/{id}")
            .route(web::get().to(brands::get))
            .route(web::patch().to(brands::update))
            .route(web::delete().to(brands::delete)),
    )
    .service(
        web::resource("/campaigns")
            .route(web::get().to(campaigns::list))
            .route(web::post().to(campaigns::create)),
    )
    .service(
        web::resource("/campaigns/{id}")
            .route(web::get().to(campaigns::get))
            .route(web::patch().to(campaigns::update))
            .route(web::delete().to(campaigns::delete)),
    )
    .service(
        web::resource("/campaigns/{id}/dayparting")
            .route(web::put().to(campaigns::put_dayparting))
            .route(web::delete().to(campaigns::delete_dayparting)),
    )
    .service(web::resource("/campaigns/{id}/pause").route(web::post().to(campaigns::pause)))
    .service(web::resource("/campaigns/{id}/resume").route(web::post().to(campaigns::resume)))
    .service(web::resource("/campaigns/{id}/history").route(web::get().to(campaigns::history)))
    .service(web::resource("/campaigns/{id}/pacing").route(web::get().to(pacing::campaign)))
    .service(web::resource("/brands/{id}/pacing").route(web::get().to(pacing::brand)))
    .service(web::resource("/brands/{id}/spend/series").route(web::get().to(pacing::series)))
    .service(web::resource("/campaigns/{id}/spend").route(web::get().to(spend::list)))
    .service(
        web::resource("/spend")
            .app_data(BodyLimit(SPEND_EVENT_LIMIT))
            .route(web::post().to(spend::record)),
    )
    .service(
        web::resource("/spend/batch")
            .app_data(BodyLimit(SPEND_BATCH_LIMIT))
            .route(web::post().to(spend::record_batch)),
    )
    .service(web::resource("/spend/{id}/reverse").route(web::post().to(spend::reverse)))
    .service(web::resource("/audit").route(web::get().to(audit::list)))
    .service(web::resource("/events").route(web::get().to(events::list)))
    .service(
        web::resource("/webhooks")
            .route(web::get().to(webhooks::list))
            .route(web::post().to(webhooks::create)),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(webhooks::get))
            .route(web::patch().to(webhooks::update))
            .route(web::delete().to(webhooks::delete)),
    )
    .service(web::resource("/webhooks/{id}/test").route(web::post().to(webhooks::test)))
    .service(
        web::resource("/webhooks/{id}/rotate-secret")
            .route(web::post().to(webhooks::rotate_secret)),
    )
    .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(webhooks::deliveries)))
    .service(
        web::resource("/webhooks/{id}/deliveries/{delivery_id}/redeliver")
            .route(web::post().to(webhooks::redeliver)),
    )
    .service(web::resource("/jobs/queues").route(web::get().to(jobs::queues)))
    .service(web::resource("/jobs/schedules").route(web::get().to(jobs::list_schedules)))
    .service(web::resource("/jobs/schedules/{job}").route(web::patch().to(jobs::update_schedule)))
    .service(web::resource("/jobs/{job}/run").route(web::post().to(jobs::run)));
}
