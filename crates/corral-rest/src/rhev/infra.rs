//! The host, the `Default` cluster and data center, capabilities, and networks.

use std::sync::Arc;

use axum::Router;

use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    Router::new()
}
