//! Local users of the HTTP door. Passwords are stored as PHC strings (argon2), never in clear.

use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// The login name without the `@domain` part.
    pub name: String,
    /// The authentication domain; local users live in `internal`, as on oVirt.
    pub domain: String,
    pub password_hash: String,
    /// SHA-256 (64 lowercase hex digits) of the user's virthttp service key, if one was issued. The key is
    /// 32 random bytes, so a plain hash is enough to keep it from being read back.
    pub service_key_sha256: Option<String>,
}

/// Whether `s` is a SHA-256 digest as stored: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub const LOCAL_DOMAIN: &str = "internal";

/// `[A-Za-z0-9_.-]`, 1–64 characters, starting with a letter.
pub fn validate_user_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(Error::value("User name must be 1-64 characters of [A-Za-z0-9_.-], starting with a letter"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(validate_user_name("admin").is_ok());
        assert!(validate_user_name("a.b-c_1").is_ok());
        assert!(validate_user_name("1admin").is_err());
        assert!(validate_user_name("ad min").is_err());
        assert!(validate_user_name("").is_err());
        assert!(validate_user_name(&"a".repeat(65)).is_err());
    }
}
