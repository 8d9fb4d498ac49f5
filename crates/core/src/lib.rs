//! The pure core of adbudget: money, periods, dayparting, the enforcement rule and its evaluation
//! over spend totals, request validation, the views the API shows, the scheduled jobs' kinds and
//! schedules, and configuration. No database and no I/O here (a CI step checks that this crate
//! never depends on diesel): `adbudget-db` reads and writes, this crate decides.

pub mod access;
pub mod audit;
pub mod config;
pub mod database_url;
pub mod dayparting;
pub mod error;
pub mod events;
pub mod forms;
pub mod jobs;
pub mod money;
pub mod pacing;
pub mod period;
pub mod rule;
pub mod telemetry;
pub mod views;
pub mod webhooks;
