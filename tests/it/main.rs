//! Integration tests against real PostgreSQL (one database per test).

mod admin;
mod archive;
mod auth;
mod chunks;
mod health;
mod idempotency;
mod ingest;
mod layout;
mod metrics;
mod openapi;
mod ratelimit;
mod stats;
