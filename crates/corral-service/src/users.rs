//! Local users for the HTTP door: argon2 password hashes in the store, and a short-lived cache of
//! verified credentials so that clients sending Basic auth on every request (the oVirt SDK does) cost one
//! hash comparison, not one argon2 run, per request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use corral_core::user::{validate_user_name, User, LOCAL_DOMAIN};
use corral_core::{Error, ErrorKind, Op, Result};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::Service;

/// How long a verified password is trusted without running argon2 again.
const VERIFIED_FOR: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(crate) struct Verified {
    /// sha256(user, domain, password) → (user name, when verified)
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

fn fingerprint(name: &str, domain: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [name, domain, password] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

fn denied() -> Error {
    Error::denied("Invalid user name or password")
}

impl Service {
    /// Adds or replaces a local user.
    pub fn user_add(&self, name: &str, password: &str) -> Result<()> {
        validate_user_name(name)?;
        if password.is_empty() {
            return Err(Error::value("Password must not be empty"));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::generic(format!("Cannot hash the password: {e}")))?
            .to_string();
        self.mutate(|app| {
            let id = app.user(name).map_or_else(uuid::Uuid::new_v4, |u| u.id);
            let user = User { id, name: name.into(), domain: LOCAL_DOMAIN.into(), password_hash: hash };
            Ok((plan_of(Op::PutUser(user)), ()))
        })?;
        self.verified.entries.lock().retain(|_, (user, _)| user != name);
        Ok(())
    }

    pub fn user_remove(&self, name: &str) -> Result<()> {
        self.mutate(|app| {
            app.user(name).ok_or_else(|| Error::new(ErrorKind::QubesException, format!("No such user: {name}")))?;
            Ok((plan_of(Op::DeleteUser { name: name.into() }), ()))
        })?;
        self.verified.entries.lock().retain(|_, (user, _)| user != name);
        Ok(())
    }

    /// Checks `user@domain` + password; `PermissionDenied` on any mismatch, without saying which part.
    pub fn authenticate(&self, login: &str, password: &str) -> Result<User> {
        let (name, domain) = login.split_once('@').unwrap_or((login, LOCAL_DOMAIN));
        let key = fingerprint(name, domain, password);
        let cached = self.verified.entries.lock().get(&key).is_some_and(|(_, at)| at.elapsed() < VERIFIED_FOR);
        let user = self.read().user(name).cloned().filter(|u| u.domain == domain).ok_or_else(denied)?;
        if cached {
            return Ok(user);
        }
        let parsed = PasswordHash::new(&user.password_hash).map_err(|_| denied())?;
        Argon2::default().verify_password(password.as_bytes(), &parsed).map_err(|_| denied())?;
        let mut entries = self.verified.entries.lock();
        entries.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
        entries.insert(key, (user.name.clone(), Instant::now()));
        Ok(user)
    }
}

fn plan_of(op: Op) -> corral_core::plan::Plan {
    let mut plan = corral_core::plan::Plan::default();
    plan.ops.push(op);
    plan
}
