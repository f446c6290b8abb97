//! Local users for the HTTP door: argon2 password hashes in the store, and a short-lived cache of
//! verified credentials so that clients sending Basic auth on every request (the oVirt SDK does) cost one
//! hash comparison, not one argon2 run, per request.
//!
//! Password guessing is throttled without letting one client's traffic refuse another's right password:
//! - argon2 runs in a fixed number of slots, each with its own reused memory, so a login flood costs at
//!   most `KNOWN_SLOTS + UNKNOWN_SLOTS` runs at a time and a fixed amount of memory;
//! - names that are no user are checked against a dummy hash (same cost, so the answer and its timing do
//!   not tell which names exist) in their own slot, so such floods never take the known users' slots;
//! - a full slot means waiting (at most `MAX_WAIT`), never a refusal;
//! - concurrent first logins with the same credentials share one check;
//! - failures lock out a (name, source address) pair and, more leniently, a source address, each for a
//!   bounded, doubling wait: a guesser locks out only itself, never the user it guesses at (an address's
//!   failures are forgotten only after a quiet while, not by a success);
//! - each source address has at most `MAX_CHECKS_PER_SOURCE` checks running or waiting.

use corral_core::error::Failure;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use corral_core::user::{validate_user_name, User, LOCAL_DOMAIN};
use corral_core::{Error, ErrorKind, Op, Result};
use parking_lot::{Condvar, Mutex};
use sha2::{Digest, Sha256};

use crate::Service;

/// How long a verified password is trusted without running argon2 again.
const VERIFIED_FOR: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(crate) struct Verified {
    /// sha256(user, domain, password) → (user name, when verified)
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

/// Consecutive failures a (name, source address) pair may have before further attempts wait.
const FREE_FAILURES: u32 = 5;
/// Consecutive failures a source address may have (for any names) before its attempts wait.
const FREE_SOURCE_FAILURES: u32 = 20;
/// The longest an attempt is refused after failures; failures older than twice this are forgotten.
const MAX_LOCK: Duration = Duration::from_secs(64);
/// Entries kept per failure map; beyond it the oldest is forgotten, so a flood of made-up names cannot
/// grow memory.
const MAX_TRACKED: usize = 10_000;
/// argon2 runs at a time for known users (one per core of a small host).
const KNOWN_SLOTS: usize = 2;
/// argon2 runs at a time for names that are no user.
const UNKNOWN_SLOTS: usize = 1;
/// The longest a check waits for a slot before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Checks one source address may have running or waiting at once.
const MAX_CHECKS_PER_SOURCE: usize = 8;

/// Consecutive failures of one key and the time of the last one, with a size bound.
struct Failures<K> {
    free: u32,
    map: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(free: u32) -> Self {
        Failures { free, map: Mutex::new(HashMap::new()) }
    }

    /// Whether `key` may try now: after `free` failures in a row, each further one doubles the wait
    /// (1 s, 2 s, … up to `MAX_LOCK`) counted from the last failure.
    fn admits(&self, key: &K, now: Instant) -> bool {
        match self.map.lock().get(key) {
            Some(&(n, last)) if n >= self.free => now.saturating_duration_since(last) >= lock_for(n - self.free),
            _ => true,
        }
    }

    fn failed(&self, key: &K, now: Instant) {
        let mut map = self.map.lock();
        map.retain(|_, (_, last)| now.saturating_duration_since(*last) < MAX_LOCK * 2);
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            if let Some(oldest) = map.iter().min_by_key(|(_, (_, last))| *last).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key.clone()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
    }

    fn succeeded(&self, key: &K) {
        self.map.lock().remove(key);
    }
}

/// A fixed number of argon2 runs at a time, each with its own memory, reused from run to run so that the
/// process does not grow with the number of threads that ever ran a check.
struct Slots {
    free: Mutex<Vec<Vec<Block>>>,
    freed: Condvar,
    max_wait: Duration,
}

impl Slots {
    fn new(n: usize, max_wait: Duration) -> Self {
        Slots { free: Mutex::new((0..n).map(|_| Vec::new()).collect()), freed: Condvar::new(), max_wait }
    }

    /// Runs `check` in a free slot, waiting for one up to `max_wait`; `None` when none came free.
    fn run(&self, check: impl FnOnce(&mut Vec<Block>) -> bool) -> Option<bool> {
        let deadline = Instant::now() + self.max_wait;
        let mut memory = {
            let mut free = self.free.lock();
            loop {
                if let Some(memory) = free.pop() {
                    break memory;
                }
                if self.freed.wait_until(&mut free, deadline).timed_out() && free.is_empty() {
                    return None;
                }
            }
        };
        let ok = check(&mut memory);
        self.free.lock().push(memory);
        self.freed.notify_one();
        Some(ok)
    }
}

/// Repeated failed logins, the slots argon2 runs in, and the checks in flight.
pub(crate) struct LoginThrottle {
    by_name: Failures<(String, IpAddr)>,
    by_source: Failures<IpAddr>,
    known: Slots,
    unknown: Slots,
    /// credentials fingerprint → the lock its one running check holds
    in_flight: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
    /// source address → checks running or waiting
    per_source: Mutex<HashMap<IpAddr, usize>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            by_name: Failures::new(FREE_FAILURES),
            by_source: Failures::new(FREE_SOURCE_FAILURES),
            known: Slots::new(KNOWN_SLOTS, MAX_WAIT),
            unknown: Slots::new(UNKNOWN_SLOTS, MAX_WAIT),
            in_flight: Mutex::new(HashMap::new()),
            per_source: Mutex::new(HashMap::new()),
        }
    }
}

/// A check counted against its source address while it lives.
struct SourceTicket<'a> {
    throttle: &'a LoginThrottle,
    source: IpAddr,
}

impl Drop for SourceTicket<'_> {
    fn drop(&mut self) {
        let mut per_source = self.throttle.per_source.lock();
        if let Some(n) = per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

impl LoginThrottle {
    fn admits(&self, name: &str, source: IpAddr, now: Instant) -> bool {
        self.by_source.admits(&source, now) && self.by_name.admits(&(name.to_string(), source), now)
    }

    fn failed(&self, name: &str, source: IpAddr, now: Instant) {
        self.by_source.failed(&source, now);
        self.by_name.failed(&(name.to_string(), source), now);
    }

    /// Clears the pair's failures; the address's stay, so that a guesser holding one account cannot reset
    /// its address's count by logging in between guesses at other names.
    fn succeeded(&self, name: &str, source: IpAddr) {
        self.by_name.succeeded(&(name.to_string(), source));
    }

    fn ticket(&self, source: IpAddr) -> Option<SourceTicket<'_>> {
        let mut per_source = self.per_source.lock();
        let n = per_source.entry(source).or_insert(0);
        if *n >= MAX_CHECKS_PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(SourceTicket { throttle: self, source })
    }

    /// Runs `f` while holding the one lock of these credentials, so that concurrent checks of the same
    /// credentials run one after the other (the later ones then find the first's result in the cache).
    fn single_flight<T>(&self, key: [u8; 32], f: impl FnOnce() -> T) -> T {
        let lock = self.in_flight.lock().entry(key).or_default().clone();
        let out = {
            let _one = lock.lock();
            f()
        };
        let mut in_flight = self.in_flight.lock();
        // Only the map and this caller still hold it: nobody waits, so it can go.
        if Arc::strong_count(&lock) == 2 {
            in_flight.remove(&key);
        }
        out
    }
}

/// The address failures are counted against: IPv4 (also when mapped into IPv6) as it is, IPv6 by its /64,
/// the block one host or customer usually gets, so that a guesser cannot step through its own addresses.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

fn lock_for(failures_beyond_free: u32) -> Duration {
    (Duration::from_secs(1) * (1u32 << failures_beyond_free.min(6))).min(MAX_LOCK)
}

/// Whether `password` matches the PHC `hash`, computed in `memory` (grown to the hash's cost if needed).
fn verify_in(memory: &mut Vec<Block>, hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks]).is_ok()
        && out.iter().zip(expected.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
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
        self.current().user(name).filter(|u| u.domain == domain).cloned()
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

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong name or password, or this name or address is throttled after failures (not told apart).
    Denied,
    /// No check slot came free within `MAX_WAIT`: the credentials were not checked; try again later.
    Busy,
}

impl Service {
    /// Adds or replaces a local user.
    pub(crate) fn user_add(&self, name: &str, password: &str) -> Result<()> {
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
    pub(crate) fn user_service_key(&self, name: &str) -> Result<String> {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let digest = sha256_hex(&key);
        self.mutate(|app| {
            let user = app
                .user(name)
                .ok_or_else(|| Error::new(ErrorKind::Failed(Failure::General), format!("No such user: {name}")))?;
            let user = User { service_key_sha256: Some(digest), ..user.clone() };
            Ok((plan_of(Op::PutUser(user)), ()))
        })?;
        Ok(key)
    }

    /// The user whose service key `key` is. Every stored digest is compared in full, so the time taken
    /// does not tell how much of a guess was right.
    pub fn service_key_user(&self, key: &str) -> Option<User> {
        let digest = sha256_hex(key);
        let app = self.current();
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

    pub(crate) fn user_remove(&self, name: &str) -> Result<()> {
        self.mutate(|app| {
            app.user(name)
                .ok_or_else(|| Error::new(ErrorKind::Failed(Failure::General), format!("No such user: {name}")))?;
            Ok((plan_of(Op::DeleteUser { name: name.into() }), ()))
        })?;
        self.verified.entries.lock().retain(|_, (user, _)| user != name);
        Ok(())
    }

    /// Checks `user@domain` + password sent from `source`; `Denied` on any mismatch, without
    /// saying which part, while this name or address is throttled after failures (a password verified
    /// before still works then); `Busy` when no check slot came free in time.
    pub fn authenticate(&self, login: &str, password: &str, source: IpAddr) -> std::result::Result<User, LoginRefused> {
        if let Some(user) = self.recently_verified(login, password) {
            return Ok(user);
        }
        let throttle = &self.throttle;
        let source = source_key(source);
        let Some(_ticket) = throttle.ticket(source) else { return Err(LoginRefused::Denied) };
        let (name, domain) = login.split_once('@').unwrap_or((login, LOCAL_DOMAIN));
        let key = fingerprint(name, domain, password);
        throttle.single_flight(key, || {
            // A check of the same credentials may have finished while this one waited.
            if let Some(user) = self.recently_verified(login, password) {
                return Ok(user);
            }
            if !throttle.admits(name, source, Instant::now()) {
                return Err(LoginRefused::Denied);
            }
            let user = self.current().user(name).cloned().filter(|u| u.domain == domain);
            let matches = match &user {
                Some(u) => throttle.known.run(|memory| verify_in(memory, &u.password_hash, password.as_bytes())),
                None => throttle.unknown.run(|memory| verify_in(memory, &NO_USER_HASH, password.as_bytes())),
            };
            let Some(matches) = matches else { return Err(LoginRefused::Busy) };
            let user = match (matches, user) {
                (true, Some(user)) => user,
                _ => {
                    throttle.failed(name, source, Instant::now());
                    return Err(LoginRefused::Denied);
                }
            };
            throttle.succeeded(name, source);
            let mut entries = self.verified.entries.lock();
            entries.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
            entries.insert(key, (user.name.clone(), Instant::now()));
            Ok(user)
        })
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

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn failures_lock_a_name_out_from_one_address_for_doubling_waits() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(t.admits("alice", HERE, start));
            t.failed("alice", HERE, start);
        }
        assert!(!t.admits("alice", HERE, start));
        assert!(!t.admits("alice", HERE, start + Duration::from_millis(999)));
        assert!(t.admits("alice", HERE, start + Duration::from_secs(1)));
        assert!(t.admits("bob", HERE, start), "other names are not affected");
        assert!(t.admits("alice", THERE, start), "the name from other addresses is not affected");
        t.failed("alice", HERE, start + Duration::from_secs(1));
        assert!(!t.admits("alice", HERE, start + Duration::from_millis(2999)));
        assert!(t.admits("alice", HERE, start + Duration::from_secs(3)));
        t.succeeded("alice", HERE);
        assert!(t.admits("alice", HERE, start + Duration::from_secs(1)));
    }

    #[test]
    fn many_failures_from_one_address_lock_out_the_address() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..FREE_SOURCE_FAILURES {
            t.failed(&format!("name{i}"), HERE, start);
            t.succeeded("mine", HERE);
        }
        assert!(!t.admits("someone", HERE, start), "logging in between guesses does not reset the count");
        assert!(t.admits("someone", THERE, start));
        assert!(t.admits("someone", HERE, start + Duration::from_secs(1)));
    }

    #[test]
    fn the_wait_is_capped_and_failures_are_forgotten() {
        assert_eq!(lock_for(0), Duration::from_secs(1));
        assert_eq!(lock_for(1), Duration::from_secs(2));
        assert_eq!(lock_for(u32::MAX), MAX_LOCK);
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..100 {
            t.failed("alice", THERE, start);
        }
        assert!(t.admits("alice", THERE, start + MAX_LOCK));
    }

    #[test]
    fn ipv6_sources_count_by_their_64_block() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(source_key(mapped), THERE);
        assert_eq!(source_key(HERE), HERE);
    }

    #[test]
    fn failure_maps_are_bounded() {
        let f = Failures::new(1);
        let now = Instant::now();
        for i in 0..MAX_TRACKED + 50 {
            f.failed(&i, now);
        }
        assert_eq!(f.map.lock().len(), MAX_TRACKED);
    }

    #[test]
    fn a_source_has_a_bounded_number_of_checks() {
        let t = LoginThrottle::default();
        let tickets: Vec<_> = (0..MAX_CHECKS_PER_SOURCE).map(|_| t.ticket(HERE).expect("ticket")).collect();
        assert!(t.ticket(HERE).is_none());
        assert!(t.ticket(THERE).is_some());
        drop(tickets);
        assert!(t.ticket(HERE).is_some());
        assert!(t.per_source.lock().is_empty(), "released tickets leave nothing behind");
    }

    #[test]
    fn a_full_slot_means_waiting_not_refusal() {
        let slots = Arc::new(Slots::new(1, MAX_WAIT));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                slots.run(|_| {
                    entered_tx.send(()).expect("send");
                    release_rx.recv().expect("recv");
                    true
                })
            })
        };
        entered_rx.recv().expect("first runs");
        let second = {
            let slots = slots.clone();
            std::thread::spawn(move || slots.run(|_| true))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!second.is_finished(), "the second check waits for the slot");
        release_tx.send(()).expect("release");
        assert_eq!(first.join().expect("join"), Some(true));
        assert_eq!(second.join().expect("join"), Some(true));
    }

    #[test]
    fn a_wait_for_a_slot_is_bounded() {
        let slots = Slots::new(1, Duration::from_millis(50));
        let inner = slots.run(|_| slots.run(|_| true).is_none());
        assert_eq!(inner, Some(true), "a check that found no free slot in time did not run");
        assert_eq!(slots.run(|_| true), Some(true), "the slot is free again");
    }

    #[test]
    fn hashes_verify_in_reused_memory() {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default().hash_password(b"secret", &salt).expect("hash").to_string();
        let mut memory = Vec::new();
        assert!(verify_in(&mut memory, &hash, b"secret"));
        assert!(!verify_in(&mut memory, &hash, b"Secret"));
        assert!(verify_in(&mut memory, &hash, b"secret"));
        assert!(!verify_in(&mut memory, "not a hash", b"secret"));
    }

    #[test]
    fn concurrent_checks_of_the_same_credentials_run_one_at_a_time() {
        let t = Arc::new(LoginThrottle::default());
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (t, running) = (t.clone(), running.clone());
                std::thread::spawn(move || {
                    t.single_flight([7; 32], || {
                        assert_eq!(running.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0);
                        std::thread::sleep(Duration::from_millis(10));
                        running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for h in threads {
            h.join().expect("join");
        }
        assert!(t.in_flight.lock().is_empty());
    }
}
