pub mod config;
pub mod dayparting;
pub mod db;
pub mod error;
pub mod forms;
pub mod jobs;
pub mod money;
pub mod period;
pub mod rule;
pub mod schema;
pub mod telemetry;
pub mod views;

pub use db::repo;
