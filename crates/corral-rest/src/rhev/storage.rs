//! Storage domains (the daemon's pools), their files, and floating disks.

use std::sync::Arc;

use axum::Router;

use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    Router::new()
}

/// How many storage domains the entry point's summary counts.
pub fn domain_count(rest: &Rest) -> usize {
    rest.service.read().pools().len()
}
