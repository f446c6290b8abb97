//! virthttp's answer: `{"results": [...], "success": bool, "errors": [...], "messages": [...]}`, its table of
//! error codes, and the one mapping of a service error to a code ([`code_of`]).

use corral_core::error::Missing;
use corral_core::hv::PowerAction;
use corral_core::{Error, ErrorKind};
use serde_json::{json, Map, Value};

#[derive(Debug, Default)]
pub struct Envelope {
    results: Vec<Value>,
    errors: Vec<Value>,
    messages: Vec<Value>,
}

/// virthttp's message for an error code; codes without an entry are "Unknown error", as there.
pub fn message_of(code: i32) -> &'static str {
    match code {
        -1 => "Unsupported",
        0 => "Syntax error",
        1 => "Bad X-Auth-Key",
        2 => "Bad URL",
        3 => "Bad request",
        4 => "No subsystem",
        5 => "Bad subsystem",
        6 => "Subsystem requires parameters",
        7 => "Bad subsystem parameter",
        10 => "Failed to open connection to the libvirt daemon",
        100 => "Bad object identifier",
        101 => "Invalid search key",
        102 => "Search flag doesn't exist",
        105 => "Failed to create domain",
        122 => "Bad action",
        123 => "Unknown action",
        200 => "Could not shut down the domain",
        201 => "Domain is not running",
        202 => "Could not start the domain",
        203 => "Domain is already active",
        204 => "No status actions specified",
        205 => "Renaming failed",
        206 => "Setting available memory failed",
        207 => "Setting maximum available memory failed",
        208 => "Setting autostart policy failed",
        209 => "Could not destroy the domain",
        210 => "Domain is not active",
        211 => "Domain is not suspended",
        212 => "Cannot resume the domain",
        213 => "Cannot reboot the domain",
        214 => "Cannot reset the domain",
        215 => "Cannot suspend the domain",
        216 => "Cannot delete the domain",
        298 => "PATCH data has to be an array of actions",
        300 => "Invalid power management value",
        301 => "Invalid flag",
        500 => "Error occurred while getting network status",
        503 => "Error occurred while getting network autostart",
        _ => "Unknown error",
    }
}

/// The libvirt call a request made when the service answered with an error, with the code virthttp gives a
/// failure of that call (each call has its own: 202 "Could not start the domain", 105 "Failed to create
/// domain", 206 "Setting available memory failed", -2 for a subquery, -999 for a network change…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A call on the domain or network the URL names.
    On(i32),
    /// A call that makes a new domain or network: the URL names nothing that could be missing.
    Making(i32),
}

impl Call {
    /// The code of the call's failure.
    pub fn code(self) -> i32 {
        match self {
            Call::On(code) | Call::Making(code) => code,
        }
    }
}

/// The virthttp code of a service error met during `call`, from the error's kind. virthttp reports a libvirt
/// call that fails with that call's own code and libvirt's reason, so that is what most kinds get: a refused,
/// malformed or invalid request, a conflict with the model, a host that cannot, a failure on the way all fail
/// the call. Three kinds say more than "the call failed", and get libvirt's code for what they say:
/// - a power action refused because of the qube's state ([`Error::conflict`]) is the precondition libvirt
///   checks before the call: 203 "Domain is already active" for a start, 210 "Domain is not active" for a
///   destroy, 211 "Domain is not suspended" for a resume, 201 "Domain is not running" for the rest;
/// - a qube that is not there (gone since the URL was resolved) is 100 "Bad object identifier", unless the
///   call makes one (then a qube it refers to is missing, and the create fails);
/// - an operation that does not exist here is -1 "Unsupported".
pub fn code_of(e: &Error, call: Call) -> i32 {
    if let Some(refused) = e.conflict {
        return match refused.action {
            PowerAction::Start => 203,
            PowerAction::Stop => 210,
            PowerAction::Unpause | PowerAction::Resume => 211,
            PowerAction::Shutdown | PowerAction::Reboot | PowerAction::Pause | PowerAction::Save => 201,
        };
    }
    match e.kind {
        ErrorKind::NotFound(missing) => match (missing, call) {
            (Missing::Qube, Call::On(_)) => 100,
            (Missing::Qube, Call::Making(code)) => code,
            (
                Missing::Property
                | Missing::Feature
                | Missing::Tag
                | Missing::Label
                | Missing::Pool
                | Missing::Volume
                | Missing::Revision
                | Missing::CloneToken,
                call,
            ) => call.code(),
        },
        ErrorKind::NotImplemented => -1,
        ErrorKind::Malformed
        | ErrorKind::Denied
        | ErrorKind::Invalid(_)
        | ErrorKind::Conflict(_)
        | ErrorKind::Unavailable(_)
        | ErrorKind::Failed(_) => call.code(),
    }
}

impl Envelope {
    pub fn result(&mut self, value: Value) {
        self.results.push(value);
    }

    /// A message such as `{"start": "Domain started"}`.
    pub fn message(&mut self, key: &str, text: impl Into<String>) {
        let mut m = Map::new();
        m.insert(key.to_string(), Value::String(text.into()));
        self.messages.push(Value::Object(m));
    }

    pub fn error(&mut self, code: i32) {
        self.errors.push(json!({"code": code, "message": message_of(code)}));
    }

    /// An error with the underlying failure as its `libvirt` member. virthttp adds that member only to
    /// codes above 100 or below 0 (the ones a libvirt call can cause), so other codes stay bare.
    pub fn error_because(&mut self, code: i32, why: impl Into<String>) {
        if !(0..=100).contains(&code) {
            self.errors.push(json!({"code": code, "message": message_of(code), "libvirt": why.into()}));
        } else {
            self.error(code);
        }
    }

    /// A service error met during `call`, with its code from [`code_of`] and its message as libvirt's reason.
    pub fn failed(&mut self, call: Call, e: Error) {
        self.error_because(code_of(&e, call), e.message);
    }

    pub fn to_json(&self) -> Value {
        json!({
            "results": self.results,
            "success": self.errors.is_empty(),
            "errors": self.errors,
            "messages": self.messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_envelope_is_a_success() {
        assert_eq!(
            Envelope::default().to_json(),
            json!({"results": [], "success": true, "errors": [], "messages": []})
        );
    }

    #[test]
    fn any_error_turns_success_false() {
        let mut e = Envelope::default();
        e.result(json!({"created": true}));
        e.error(301);

        assert_eq!(
            e.to_json(),
            json!({"results": [{"created": true}], "success": false,
                   "errors": [{"code": 301, "message": "Invalid flag"}], "messages": []})
        );
    }

    #[test]
    fn the_libvirt_member_is_only_for_codes_beyond_100_or_negative() {
        let mut e = Envelope::default();
        e.error_because(0, "ignored");
        e.error_because(-1, "why");

        assert_eq!(
            e.to_json()["errors"],
            json!([{"code": 0, "message": "Syntax error"}, {"code": -1, "message": "Unsupported", "libvirt": "why"}])
        );
    }

    #[test]
    fn a_state_refusal_is_libvirts_precondition_code_whatever_the_call() {
        use corral_core::error::Conflict;
        use corral_core::hv::PowerState;
        let refused =
            |action, state| Error::new(ErrorKind::Conflict(Conflict::NotRunning), "refused").refusing(action, state);

        assert_eq!(code_of(&refused(PowerAction::Start, PowerState::Running), Call::On(202)), 203);
        assert_eq!(code_of(&refused(PowerAction::Stop, PowerState::Halted), Call::On(209)), 210);
        assert_eq!(code_of(&refused(PowerAction::Unpause, PowerState::Running), Call::On(212)), 211);
        assert_eq!(code_of(&refused(PowerAction::Shutdown, PowerState::Halted), Call::On(213)), 201);
    }

    #[test]
    fn other_kinds_fail_the_call_except_a_missing_qube_and_an_operation_that_does_not_exist() {
        let missing = Error::vm_not_found("web");
        let state = Error::not_halted("web");
        let unsupported = Error::new(ErrorKind::NotImplemented, "no");

        assert_eq!(code_of(&missing, Call::On(216)), 100);
        assert_eq!(code_of(&missing, Call::Making(105)), 105);
        assert_eq!(code_of(&state, Call::On(216)), 216);
        assert_eq!(code_of(&Error::denied("no"), Call::Making(105)), 105);
        assert_eq!(code_of(&Error::value("no"), Call::On(-2)), -2);
        assert_eq!(code_of(&unsupported, Call::On(-2)), -1);
    }

    #[test]
    fn codes_without_an_entry_are_unknown_errors() {
        assert_eq!(message_of(-2), "Unknown error");
        assert_eq!(message_of(-999), "Unknown error");
    }
}
