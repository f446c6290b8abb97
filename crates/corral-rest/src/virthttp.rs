//! The virthttp-style JSON API under `/libvirt/`: qubes as libvirt domains, answered in virthttp's
//! `{results, success, errors, messages}` envelope.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

use crate::Rest;

pub fn routes() -> Router<Arc<Rest>> {
    Router::new()
}

/// virthttp's error 1, with HTTP 401 so that clients and proxies see the refusal too.
pub fn unauthorized() -> Response {
    let body =
        json!({"results": [], "success": false, "errors": [{"code": 1, "message": "Bad X-Auth-Key"}], "messages": []});
    let mut r = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
