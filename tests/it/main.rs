//! Integration tests against real PostgreSQL (one database per test).

#![allow(clippy::unwrap_used)]

mod admin;
mod archive;
mod auth;
mod chunks;
mod clients;
mod cold_readers;
mod dashboard;
mod days;
mod docs_examples;
mod health;
mod idempotency;
mod ingest;
mod lake;
mod layout;
mod lifecycle;
mod metrics;
mod openapi;
mod queue;
mod ratelimit;
mod stats;
