//! Placeholder: filled in by the module's owner.

use std::sync::Arc;

use axum::Router;

use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    Router::new()
}
