//! `/api/users`: the daemon's local users, read-only. Users are added and removed by root with
//! `corral user add|remove` (the internal socket), not over HTTP, until roles and permissions exist.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use corral_core::user::User;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::handler::collection;
use crate::ctx::Ctx;
use crate::fault::{ApiError, ApiResult};
use crate::openapi::{schema, BadRequest, NotFound, Search};
use crate::repr::Node;
use crate::Rest;

pub fn routes() -> OpenApiRouter<Arc<Rest>> {
    OpenApiRouter::default().routes(routes!(list)).routes(routes!(one))
}

fn user_node(ctx: &Ctx, u: &User) -> Node {
    let id = u.id.to_string();
    Node::new("user")
        .attr("href", ctx.href(&format!("/users/{id}")))
        .attr("id", &id)
        .with_leaf("name", &u.name)
        .with_leaf("user_name", format!("{}@{}", u.name, u.domain))
        .child(Node::new("domain").with_leaf("name", &u.domain))
}

fn user_field(u: &User, field: &str) -> Option<String> {
    Some(match field {
        "name" | "usrname" | "user_name" => u.name.clone(),
        "id" => u.id.to_string(),
        _ => return None,
    })
}

#[utoipa::path(get, path = "/api/users", operation_id = "list_users", tag = "users", summary = "List local users",
    params(Search), responses((status = 200, response = schema::Users), (status = 400, response = BadRequest)))]
async fn list(ctx: Ctx, State(rest): State<Arc<Rest>>) -> ApiResult<Response> {
    let users: Vec<User> = rest.service.view(&crate::principal()).users().cloned().collect();
    let out = collection(&ctx, "users", users, user_field, |u| user_node(&ctx, u))?;
    Ok(ctx.ok(&out))
}

#[utoipa::path(get, path = "/api/users/{id}", operation_id = "get_user", tag = "users", summary = "Get a local user",
    params(("id" = String, Path, description = "The user's UUID")),
    responses((status = 200, response = schema::User), (status = 404, response = NotFound)))]
async fn one(ctx: Ctx, State(rest): State<Arc<Rest>>, Path(id): Path<String>) -> ApiResult<Response> {
    let app = rest.service.view(&crate::principal());
    let user =
        app.users().find(|u| u.id.to_string() == id).ok_or_else(|| ApiError::not_found(&format!("user {id}")))?;
    Ok(ctx.ok(&user_node(&ctx, user)))
}
