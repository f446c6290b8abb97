//! `/api/events`: the service's audit log as RHEV events (`crate::events`), newest first.
//!
//! `;from=ID` (or `?from=ID`) keeps the events with an id greater than ID. The search knows `id`, `type`
//! (the event code), `severity` (ordered normal < warning < error < alert, so `severity>normal` works),
//! `time`, `description` and `vm`/`vm.name`; `sortby time` sorts by id, which follows time exactly where
//! seconds cannot. Events are read-only: writes answer 405 with a fault.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::common::{self, reference};
use super::handler::collection;
use crate::ctx::Ctx;
use crate::events::{rhev_event, RhevEvent};
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, NotFound, Search, Since};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default()
        .routes(routes!(list).map(|r| r.fallback(not_allowed)))
        .routes(routes!(one).map(|r| r.fallback(not_allowed)))
}

async fn not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Operation Failed", "Events are read-only")
}

/// RHEV's severities in increasing order.
const SEVERITIES: [&str; 4] = ["normal", "warning", "error", "alert"];

fn severity_rank(word: &str) -> Option<usize> {
    SEVERITIES.iter().position(|s| s.eq_ignore_ascii_case(word))
}

/// Event codes that carry the host (the guide: a start event has vm and host refs; so do stops).
const ON_HOST: [u32; 4] = [32, 33, 54, 153];

/// The search text with severities as ranks (the generic search compares words as text) and
/// `sortby time` as `sortby id`.
fn rewrite_search(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let after_sortby = i > 0 && words[i - 1].eq_ignore_ascii_case("sortby");
        if after_sortby && word.eq_ignore_ascii_case("time") {
            out.push("id".to_string());
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let rewritten = lower.strip_prefix("severity").and_then(|rest| {
            let op_len = rest.chars().take_while(|c| matches!(c, '=' | '!' | '<' | '>')).count();
            let (op, value) = rest.split_at(op_len);
            (!op.is_empty()).then(|| severity_rank(value).map(|r| format!("severity{op}{r}"))).flatten()
        });
        out.push(rewritten.unwrap_or_else(|| word.to_string()));
    }
    out.join(" ")
}

fn event_field(e: &RhevEvent, field: &str) -> Option<String> {
    Some(match field {
        "id" => e.id.to_string(),
        "type" | "code" => e.code.to_string(),
        "severity" => severity_rank(e.severity).unwrap_or(0).to_string(),
        "time" => common::xsd_time(e.time),
        "description" => e.description.clone(),
        "vm" | "vm.name" => e.vm.as_ref().map(|(_, name)| name.clone())?,
        "user" | "user.name" => e.user.as_ref().map(|(_, name)| name.clone())?,
        "correlation_id" => e.correlation_id.as_deref()?.to_string(),
        _ => return None,
    })
}

fn event_node(ctx: &Ctx, e: &RhevEvent) -> Node {
    let id = e.id.to_string();
    let mut node = Node::new("event")
        .attr("href", ctx.href(&format!("/events/{id}")))
        .attr("id", &id)
        .with_leaf("description", &e.description)
        .with_leaf("code", e.code.to_string())
        .with_leaf("severity", e.severity)
        .with_leaf("time", common::xsd_time(e.time))
        .with_leaf("origin", "corral")
        .with_leaf("custom_id", "-1");
    if let Some(c) = &e.correlation_id {
        node.push(Node::leaf("correlation_id", c.to_string()));
    }
    // A qube removed before its event was logged has no uuid left to point at.
    if let Some((uuid, _)) = e.vm.as_ref().filter(|(uuid, _)| !uuid.is_empty()) {
        node.push(reference(ctx, "vm", "vms", uuid));
    }
    if ON_HOST.contains(&e.code) {
        node.push(reference(ctx, "host", "hosts", common::host_id()));
    }
    if let Some((uuid, _)) = &e.user {
        node.push(reference(ctx, "user", "users", uuid));
    }
    node
}

#[utoipa::path(get, path = "/api/events", operation_id = "list_events", tag = "events", summary = "List events",
    description = "Newest first. The search knows `id`, `type`, `severity` (ordered normal < warning < error < alert), \
        `time`, `description`, `vm`, `user` and `correlation_id`. Writes answer 405.",
    params(Since, Search), responses((status = 200, response = schema::Events), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let from = match ctx.param("from") {
        None => 0,
        Some(f) => f.parse::<u64>().map_err(|_| ApiError::bad_request(format!("Invalid event id in from: {f}")))?,
    };
    let view = rest.service.view(&crate::principal());
    let mut events: Vec<_> = view.audit_since(from).into_iter().filter_map(rhev_event).collect();
    events.reverse();
    let mut search_ctx = ctx.clone();
    for (k, v) in &mut search_ctx.query {
        if k == "search" {
            *v = rewrite_search(v);
        }
    }
    let out = collection(&search_ctx, "events", events, event_field, |e| event_node(&ctx, e))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/events/{id}", operation_id = "get_event", tag = "events", summary = "Get an event",
    params(("id" = String, Path, description = "The event's number")),
    responses((status = 200, response = schema::Event), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let e = id
        .parse::<u64>()
        .ok()
        .and_then(|n| rest.service.view(&crate::principal()).audit_record(n))
        .and_then(rhev_event)
        .ok_or_else(|| ApiError::not_found(&format!("event {id}")))?;
    Ok(ctx.ok(&event_node(&ctx, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_become_ranks() {
        assert_eq!(rewrite_search("severity>normal and type=30"), "severity>0 and type=30");
    }

    #[test]
    fn sortby_time_becomes_sortby_id() {
        assert_eq!(rewrite_search("sortby time desc page 2"), "sortby id desc page 2");
    }

    #[test]
    fn other_terms_are_left_alone() {
        assert_eq!(rewrite_search("severity>bogus vm.name=time"), "severity>bogus vm.name=time");
    }
}
