//! The console: server-rendered pages under `/console/` on the API listener.

use crate::api::Shared;
use axum::Router;
use std::sync::Arc;

/// Console sign-ins (session id -> token), in memory.
#[derive(Debug, Default)]
pub struct Sessions {}

/// The console routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
