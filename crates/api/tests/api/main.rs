//! Integration tests of the API: the real application on port 0, a database of its own per test,
//! every test on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod access;
mod admin;
mod auth;
mod brands;
mod browser;
mod campaigns;
mod dayparting;
mod events;
mod jobs;
mod metrics;
mod outage;
mod pacing;
mod robustness;
mod security;
mod spend;
