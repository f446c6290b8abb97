//! Expected replies, in forms whose assertion failures show the bytes readably.

use std::fmt;

use super::Daemon;

/// Reply bytes that print readably when an assertion fails.
#[derive(PartialEq, Eq)]
pub struct Reply(pub Vec<u8>);

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

pub fn reply(bytes: impl AsRef<[u8]>) -> Reply {
    Reply(bytes.as_ref().to_vec())
}

pub fn ok(content: &str) -> Reply {
    reply(format!("0\0{content}"))
}

pub fn exc(kind: &str, message: &str) -> Reply {
    reply(format!("2\0{kind}\0\0{message}\0"))
}

pub fn call(d: &Daemon, method: &str, dest: &str, payload: &[u8]) -> Reply {
    reply(d.call(method, dest, payload))
}

/// Bytes as text with NULs and newlines escaped.
pub fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_default().to_string()
}

/// [`shown`] of a success reply.
pub fn ok_reply(content: &str) -> String {
    shown(format!("0\0{content}").as_bytes())
}

/// [`shown`] of an exception reply.
pub fn err_reply(kind: &str, message: &str) -> String {
    shown(format!("2\0{kind}\0\0{message}\0").as_bytes())
}
