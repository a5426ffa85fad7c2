//! The handlers, one module per group of routes (the router is in the crate
//! root, the OpenAPI document that lists them in `openapi.rs`).

pub(crate) mod admin;
pub(crate) mod erasures;
pub(crate) mod health;
pub mod ingest;
pub mod queue;
pub mod stats;
pub(crate) mod ui;
