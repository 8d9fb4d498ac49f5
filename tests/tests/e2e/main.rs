//! End-to-end: the real binaries, as an operator runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cli;
mod deploy;
mod flood;
mod jobs;
mod logging;
mod schedules;
mod standalone;
mod webhooks;
