//! crossline-collector: receives events from crossline agents over mutual TLS, stores them
//! durably, groups alerts into incidents, notifies people, and serves Prometheus metrics and a
//! role-scoped HTTP API.
//!
//! `main.rs` is glue; everything lives here so tests, benchmarks and tools reach the logic:
//! [`pki`] (CA and certificates), [`tls`] (rustls set-up), [`ingest`] (`POST /v1/events`),
//! [`store`] (the [`store::Store`] trait and its SQLite implementation), [`pg`] (the PostgreSQL
//! implementation, for several replicas on one database), [`incident`] (grouping,
//! grading, lifecycle), [`notify`] (outbox delivery to Alertmanager, webhooks, syslog),
//! [`metrics`], [`api`], [`console`] (the browser console) and [`server`] (listeners and shutdown).
#![forbid(unsafe_code)]

pub mod api;
pub mod conn;
pub mod console;
pub mod incident;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod pg;
pub mod pg_tls;
pub mod pki;
pub mod report;
pub mod server;
pub mod sketch;
pub mod store;
pub mod tls;
pub mod util;
