//! Errors as HTTP answers: a status and a RHEV `<fault>` (or its JSON twin). The status is chosen here
//! from the core's error kind, so every route maps the same failure the same way.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use corral_core::hv::{PowerAction, PowerState};
use corral_core::{Error, ErrorKind};

use crate::repr::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    pub detail: String,
}

/// Attached to fault responses so the format layer can re-render them as JSON.
#[derive(Debug, Clone)]
pub struct FaultBody(pub Node);

impl ApiError {
    pub fn new(status: StatusCode, reason: &str, detail: impl Into<String>) -> Self {
        ApiError { status, reason: reason.into(), detail: detail.into() }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Operation Failed", format!("Entity not found: {what}"))
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Operation Failed", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Operation Failed", detail)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Authentication required")
    }

    pub fn node(&self) -> Node {
        Node::new("fault").with_leaf("reason", &self.reason).with_leaf("detail", format!("[{}]", self.detail))
    }
}

/// oVirt's words for a vm in `state`, as its faults use them.
fn state_words(state: PowerState) -> &'static str {
    match state {
        PowerState::Halted | PowerState::Crashed => "down",
        PowerState::Running => "running",
        PowerState::Paused => "paused",
        PowerState::Suspended | PowerState::Saved => "suspended",
        PowerState::Halting | PowerState::Dying => "powering down",
        PowerState::Transient => "powering up",
        PowerState::NA => "in an unknown state",
    }
}

/// The RHEV action a refused power action was asked as.
fn action_name(action: PowerAction) -> &'static str {
    match action {
        PowerAction::Start => "start",
        PowerAction::Stop => "stop",
        PowerAction::Shutdown => "shutdown",
        PowerAction::Reboot => "reboot",
        PowerAction::Pause => "pause",
        PowerAction::Unpause | PowerAction::Resume => "resume",
        PowerAction::Save => "suspend",
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use corral_core::error::Missing;
        use ErrorKind::*;
        if let Some(c) = e.conflict {
            return ApiError::conflict(format!("Cannot {} VM. VM is {}.", action_name(c.action), state_words(c.state)));
        }
        let status = match e.kind {
            // A clone token is a value the client passed back, not an object it names.
            NotFound(Missing::CloneToken) => StatusCode::BAD_REQUEST,
            NotFound(_) => StatusCode::NOT_FOUND,
            Denied => StatusCode::FORBIDDEN,
            // A missing template is a fault of the request's content.
            Conflict(corral_core::error::Conflict::NoTemplate) => StatusCode::BAD_REQUEST,
            Conflict(_) => StatusCode::CONFLICT,
            Malformed | Invalid(_) => StatusCode::BAD_REQUEST,
            Failed(_) | Unavailable(_) | NotImplemented => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, "Operation Failed", e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let node = self.node();
        let mut response = (self.status, node.to_xml()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"RESTAPI\""));
        }
        response.extensions_mut().insert(FaultBody(node));
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_for_the_vm_state_is_a_409_that_says_why() {
        let e = Error::new(
            ErrorKind::Conflict(corral_core::error::Conflict::NotHalted),
            "Domain is not powered off: 'web'",
        )
        .refusing(PowerAction::Start, PowerState::Running);

        let api = ApiError::from(e);

        assert_eq!(api.status, StatusCode::CONFLICT);
        let xml = String::from_utf8(api.node().to_xml()).expect("utf-8");
        assert!(xml.contains("<detail>[Cannot start VM. VM is running.]</detail>"), "{xml}");
    }

    #[test]
    fn a_saved_vm_is_suspended_in_a_fault() {
        let e = Error::new(ErrorKind::Conflict(corral_core::error::Conflict::NotRunning), "x")
            .refusing(PowerAction::Save, PowerState::Saved);

        assert_eq!(ApiError::from(e).detail, "Cannot suspend VM. VM is suspended.");
    }
}
