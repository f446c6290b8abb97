//! virthttp's answer: `{"results": [...], "success": bool, "errors": [...], "messages": [...]}`, and its
//! table of error codes.

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
    fn codes_without_an_entry_are_unknown_errors() {
        assert_eq!(message_of(-2), "Unknown error");
        assert_eq!(message_of(-999), "Unknown error");
    }
}
