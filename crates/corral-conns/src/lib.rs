//! Connection admission shared by the doors.
//!
//! Every connection holds a descriptor, and the daemon shares its descriptors between its doors, libvirt and
//! the store: a door keeps at most `max_connections`, and at most `max_per_peer` for any one peer (an IP
//! address on the HTTP door, a uid on the Admin API socket), so one client cannot take the door from the others.
//!
//! When a limit is reached, a new connection takes the place of the oldest *idle* connection it competes with
//! (the same peer's when the peer is at its limit, anyone's when the door is full): idle or slow clients cannot
//! keep a client that sends its request at once from being served. A connection is idle while no request of its
//! is being served; one that serves a request or streams events is never evicted. A connection idle for
//! `idle_timeout` (before its first request, or between requests) is closed.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a door allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_peer: usize,
    /// How long a connection may stay without a request being served before it is closed.
    pub idle_timeout: Duration,
}

impl Limits {
    /// A door's limits from its share of the process's descriptors: a peer may take a quarter of it.
    pub fn from_share(descriptors: u64, idle_timeout: Duration) -> Limits {
        let max_connections = usize::try_from(descriptors.clamp(16, 4096)).unwrap_or(4096);
        Limits { max_connections, max_per_peer: (max_connections / 4).max(8), idle_timeout }
    }
}

/// Why a connection was not admitted: every connection it could replace is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The peer holds `max_per_peer` connections, all serving requests.
    PeerFull,
    /// The door holds `max_connections` connections, all serving requests.
    DoorFull,
}

/// Whether a connection is serving anything, and since when it has not been.
#[derive(Debug)]
pub struct Activity {
    busy: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity { busy: AtomicUsize::new(0), idle_since: Mutex::new(Instant::now()) }
    }

    /// Marks the connection busy until the returned guard is dropped (a request's answer sent, a stream ended).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    pub fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// When an idle connection times out; `None` while it is busy.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let since = *self.idle_since.lock();
        self.is_idle().then(|| since + timeout)
    }
}

/// A request or stream in progress on a connection; dropping it ends it.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // The idle clock restarts before the connection can be seen idle.
        *self.0.idle_since.lock() = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Entry<K> {
    id: u64,
    peer: K,
    activity: Arc<Activity>,
    close: oneshot::Sender<()>,
}

struct Open<K> {
    /// Oldest first.
    entries: VecDeque<Entry<K>>,
    per_peer: HashMap<K, usize>,
    next_id: u64,
}

/// A door's open connections.
pub struct Door<K> {
    limits: Limits,
    open: Mutex<Open<K>>,
}

/// A connection's place in the door, given up when dropped.
pub struct Admitted<K: Eq + Hash + Clone> {
    door: Arc<Door<K>>,
    id: u64,
    pub activity: Arc<Activity>,
    evicted: oneshot::Receiver<()>,
}

impl<K: Eq + Hash + Clone> Door<K> {
    pub fn new(limits: Limits) -> Arc<Door<K>> {
        let limits = Limits {
            max_connections: limits.max_connections.max(1),
            max_per_peer: limits.max_per_peer.max(1),
            idle_timeout: limits.idle_timeout,
        };
        Arc::new(Door {
            limits,
            open: Mutex::new(Open { entries: VecDeque::new(), per_peer: HashMap::new(), next_id: 0 }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.open.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a connection from `peer`, evicting the oldest idle connection it competes with when a limit is
    /// reached. The evicted connection's task is told to close and counts no more from now on.
    pub fn admit(self: &Arc<Self>, peer: K) -> Result<Admitted<K>, Refused> {
        let mut open = self.open.lock();
        let of_peer = open.per_peer.get(&peer).copied().unwrap_or(0);
        if of_peer >= self.limits.max_per_peer {
            if !open.evict_oldest_idle(Some(&peer)) {
                return Err(Refused::PeerFull);
            }
        } else if open.entries.len() >= self.limits.max_connections && !open.evict_oldest_idle(None) {
            return Err(Refused::DoorFull);
        }
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity::new());
        let (close, evicted) = oneshot::channel();
        *open.per_peer.entry(peer.clone()).or_insert(0) += 1;
        open.entries.push_back(Entry { id, peer, activity: activity.clone(), close });
        Ok(Admitted { door: self.clone(), id, activity, evicted })
    }
}

impl<K: Eq + Hash + Clone> Open<K> {
    fn evict_oldest_idle(&mut self, of: Option<&K>) -> bool {
        let found = self.entries.iter().position(|e| e.activity.is_idle() && of.is_none_or(|peer| e.peer == *peer));
        let Some(entry) = found.and_then(|at| self.entries.remove(at)) else { return false };
        self.forget_peer(&entry.peer);
        // The connection may have ended meanwhile: then there is nobody to tell.
        let _ = entry.close.send(());
        true
    }

    fn forget_peer(&mut self, peer: &K) {
        if let Some(n) = self.per_peer.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(peer);
            }
        }
    }
}

impl<K: Eq + Hash + Clone> Admitted<K> {
    /// Resolves when the connection must close: evicted for a newer one, or idle for the door's `idle_timeout`.
    pub async fn must_close(&mut self) {
        let timeout = self.door.limits.idle_timeout;
        let activity = self.activity.clone();
        let idle_too_long = async move {
            loop {
                match activity.idle_deadline(timeout) {
                    Some(deadline) if deadline <= Instant::now() => return,
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    // Busy: looked at again later (a request's end restarts the clock, so nothing is missed).
                    None => tokio::time::sleep(timeout).await,
                }
            }
        };
        tokio::select! {
            _ = &mut self.evicted => {}
            _ = idle_too_long => {}
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Admitted<K> {
    fn drop(&mut self) {
        let mut open = self.door.open.lock();
        if let Some(at) = open.entries.iter().position(|e| e.id == self.id) {
            if let Some(entry) = open.entries.remove(at) {
                open.forget_peer(&entry.peer);
            }
        }
    }
}

/// A condition a door warns about that lasts (out of descriptors, a full door) comes back every few
/// milliseconds while it lasts: one warning a second, with the number of those not logged.
#[derive(Debug, Default)]
pub struct RateLimited {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// Calls `log` with the number of warnings dropped since the last one, at most once a second.
    pub fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(max: usize, per_peer: usize) -> Arc<Door<&'static str>> {
        Door::new(Limits { max_connections: max, max_per_peer: per_peer, idle_timeout: Duration::from_secs(60) })
    }

    async fn evicted<K: Eq + Hash + Clone>(c: &mut Admitted<K>) -> bool {
        tokio::time::timeout(Duration::from_millis(10), c.must_close()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_door_evicts_the_oldest_idle_connection_and_never_a_busy_one() {
        let door = door(2, 2);
        let mut first = door.admit("a").expect("first");
        let mut second = door.admit("b").expect("second");
        let _serving = second.activity.begin();

        let mut third = door.admit("c").expect("third takes the oldest idle's place");
        assert!(evicted(&mut first).await);
        assert!(!evicted(&mut second).await);
        assert_eq!(door.len(), 2);

        let _busy = third.activity.begin();
        assert_eq!(door.admit("d").err(), Some(Refused::DoorFull));
        assert!(!evicted(&mut third).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_at_its_limit_gives_way_only_to_itself() {
        let door = door(10, 2);
        let mut other = door.admit("other").expect("other");
        let mut a1 = door.admit("a").expect("a1");
        let _a2 = door.admit("a").expect("a2");
        let _a3 = door.admit("a").expect("a3 replaces a1");
        assert!(evicted(&mut a1).await);
        assert!(!evicted(&mut other).await, "another peer's idle connection is left alone");

        let door = self::door(10, 1);
        let busy = door.admit("a").expect("busy");
        let _serving = busy.activity.begin();
        assert_eq!(door.admit("a").err(), Some(Refused::PeerFull));
        assert!(door.admit("b").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_after_the_timeout_counted_from_their_last_request() {
        let door = door(4, 4);
        let mut c = door.admit("a").expect("admitted");
        tokio::time::advance(Duration::from_secs(59)).await;
        let busy = c.activity.begin();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(!evicted(&mut c).await, "a connection serving a request is not idle");
        drop(busy);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!evicted(&mut c).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(evicted(&mut c).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connection_frees_its_place() {
        let door = door(1, 1);
        let c = door.admit("a").expect("first");
        let _busy = c.activity.begin();
        assert!(door.admit("b").is_err());
        drop(_busy);
        drop(c);
        assert!(door.is_empty());
        assert!(door.admit("b").is_ok());
    }
}
