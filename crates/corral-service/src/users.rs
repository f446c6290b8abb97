//! Local users for the HTTP door: argon2 password hashes in the store, and a short-lived cache of
//! verified credentials so that clients sending Basic auth on every request (the oVirt SDK does) cost one
//! hash comparison, not one argon2 run, per request.
//!
//! Password guessing is throttled: argon2 runs one at a time with a short queue (a flood of bad logins
//! costs at most one core), and a user with repeated failures is refused without a check for a while.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
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

/// Consecutive failures a user may have before further attempts wait.
const FREE_FAILURES: u32 = 5;
/// The longest a user's attempts are refused after failures.
const MAX_LOCK: Duration = Duration::from_secs(64);
/// argon2 checks running or waiting; more are refused at once.
const MAX_PENDING_CHECKS: usize = 4;

/// Repeated failed logins per user, and the gate that runs argon2 one check at a time.
#[derive(Default)]
pub(crate) struct LoginThrottle {
    /// user name → (consecutive failures, time of the last one)
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    pending: AtomicUsize,
    gate: Mutex<()>,
}

impl LoginThrottle {
    /// Whether `user` may try a password now: after `FREE_FAILURES` failures in a row, each further one
    /// doubles the wait (1 s, 2 s, … up to `MAX_LOCK`) counted from the last failure.
    fn admits(&self, user: &str, now: Instant) -> bool {
        match self.failures.lock().get(user) {
            Some(&(n, last)) if n >= FREE_FAILURES => now.saturating_duration_since(last) >= lock_for(n),
            _ => true,
        }
    }

    fn failed(&self, user: &str, now: Instant) {
        let mut failures = self.failures.lock();
        // Forget users whose last failure is long past, so the map cannot grow without bound.
        failures.retain(|_, (_, last)| now.saturating_duration_since(*last) < MAX_LOCK * 2);
        let entry = failures.entry(user.to_string()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
    }

    fn succeeded(&self, user: &str) {
        self.failures.lock().remove(user);
    }

    /// Runs one argon2 check, or refuses when too many are already queued.
    fn check(&self, run: impl FnOnce() -> bool) -> bool {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_CHECKS {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let ok = {
            let _one_at_a_time = self.gate.lock();
            run()
        };
        self.pending.fetch_sub(1, Ordering::AcqRel);
        ok
    }
}

fn lock_for(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(FREE_FAILURES).min(6);
    (Duration::from_secs(1) * (1u32 << doublings)).min(MAX_LOCK)
}

/// A hash no password matches, checked for unknown users so that they take as long as known ones.
static NO_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let secret: [u8; 32] = rand::random();
    Argon2::default().hash_password(&secret, &salt).map(|h| h.to_string()).unwrap_or_default()
});

impl Service {
    /// The user these credentials name when they were verified in the last five minutes and the user
    /// still exists: one SHA-256 and a map lookup, cheap enough for an async thread, so that a client
    /// sending Basic credentials on every request pays for argon2 only once.
    pub fn recently_verified(&self, login: &str, password: &str) -> Option<User> {
        let (name, domain) = login.split_once('@').unwrap_or((login, LOCAL_DOMAIN));
        let key = fingerprint(name, domain, password);
        let cached = self.verified.entries.lock().get(&key).is_some_and(|(_, at)| at.elapsed() < VERIFIED_FOR);
        if !cached {
            return None;
        }
        self.read().user(name).filter(|u| u.domain == domain).cloned()
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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
            let old = app.user(name);
            let id = old.map_or_else(uuid::Uuid::new_v4, |u| u.id);
            // A new password leaves the service key as it was.
            let service_key_sha256 = old.and_then(|u| u.service_key_sha256.clone());
            let user =
                User { id, name: name.into(), domain: LOCAL_DOMAIN.into(), password_hash: hash, service_key_sha256 };
            Ok((plan_of(Op::PutUser(user)), ()))
        })?;
        self.verified.entries.lock().retain(|_, (user, _)| user != name);
        Ok(())
    }

    /// Issues a new virthttp service key for user `name` (the old one stops working): 32 random bytes as
    /// 64 hex digits, returned once; only its SHA-256 is kept.
    pub fn user_service_key(&self, name: &str) -> Result<String> {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let digest = sha256_hex(&key);
        self.mutate(|app| {
            let user =
                app.user(name).ok_or_else(|| Error::new(ErrorKind::QubesException, format!("No such user: {name}")))?;
            let user = User { service_key_sha256: Some(digest), ..user.clone() };
            Ok((plan_of(Op::PutUser(user)), ()))
        })?;
        Ok(key)
    }

    /// The user whose service key `key` is. Every stored digest is compared in full, so the time taken
    /// does not tell how much of a guess was right.
    pub fn service_key_user(&self, key: &str) -> Option<User> {
        let digest = sha256_hex(key);
        let app = self.read();
        let mut found = None;
        for u in app.users() {
            let stored = u.service_key_sha256.as_deref().unwrap_or_default().as_bytes();
            let same = stored.len() == digest.len()
                && stored.iter().zip(digest.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same {
                found = Some(u.clone());
            }
        }
        found
    }

    pub fn user_remove(&self, name: &str) -> Result<()> {
        self.mutate(|app| {
            app.user(name).ok_or_else(|| Error::new(ErrorKind::QubesException, format!("No such user: {name}")))?;
            Ok((plan_of(Op::DeleteUser { name: name.into() }), ()))
        })?;
        self.verified.entries.lock().retain(|_, (user, _)| user != name);
        Ok(())
    }

    /// Checks `user@domain` + password; `PermissionDenied` on any mismatch, without saying which part, and
    /// while the user is throttled after failures (a password verified before still works then).
    pub fn authenticate(&self, login: &str, password: &str) -> Result<User> {
        if let Some(user) = self.recently_verified(login, password) {
            return Ok(user);
        }
        let (name, domain) = login.split_once('@').unwrap_or((login, LOCAL_DOMAIN));
        let key = fingerprint(name, domain, password);
        let user = self.read().user(name).cloned().filter(|u| u.domain == domain);
        if !self.throttle.admits(name, Instant::now()) {
            return Err(denied());
        }
        let hash = user.as_ref().map_or(NO_USER_HASH.as_str(), |u| u.password_hash.as_str());
        let matches = self.throttle.check(|| {
            PasswordHash::new(hash)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        });
        let user = match (matches, user) {
            (true, Some(user)) => user,
            (_, user) => {
                if user.is_some() {
                    self.throttle.failed(name, Instant::now());
                }
                return Err(denied());
            }
        };
        self.throttle.succeeded(name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_a_user_out_for_doubling_waits() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(t.admits("alice", start));
            t.failed("alice", start);
        }
        assert!(!t.admits("alice", start));
        assert!(!t.admits("alice", start + Duration::from_millis(999)));
        assert!(t.admits("alice", start + Duration::from_secs(1)));
        assert!(t.admits("bob", start), "other users are not affected");
        t.failed("alice", start + Duration::from_secs(1));
        assert!(!t.admits("alice", start + Duration::from_millis(2999)));
        assert!(t.admits("alice", start + Duration::from_secs(3)));
        t.succeeded("alice");
        assert!(t.admits("alice", start + Duration::from_secs(1)));
    }

    #[test]
    fn the_wait_is_capped() {
        assert_eq!(lock_for(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(lock_for(FREE_FAILURES + 1), Duration::from_secs(2));
        assert_eq!(lock_for(u32::MAX), MAX_LOCK);
    }

    #[test]
    fn checks_beyond_the_queue_are_refused() {
        let t = std::sync::Arc::new(LoginThrottle::default());
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Arc::new(parking_lot::Mutex::new(release_rx));
        let mut threads = Vec::new();
        for _ in 0..MAX_PENDING_CHECKS {
            let (t, entered_tx, release_rx) = (t.clone(), entered_tx.clone(), release_rx.clone());
            threads.push(std::thread::spawn(move || {
                t.check(|| {
                    entered_tx.send(()).unwrap();
                    release_rx.lock().recv().unwrap();
                    true
                })
            }));
        }
        // The first check runs; the others wait at the gate, filling the queue.
        entered_rx.recv().unwrap();
        while t.pending.load(Ordering::Acquire) < MAX_PENDING_CHECKS {
            std::thread::yield_now();
        }
        assert!(!t.check(|| true), "a check beyond the queue is refused without running");
        for _ in 0..MAX_PENDING_CHECKS {
            release_tx.send(()).unwrap();
        }
        assert!(threads.into_iter().all(|h| h.join().unwrap()));
        assert!(t.check(|| true));
    }
}
