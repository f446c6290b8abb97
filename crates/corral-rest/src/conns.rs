//! The plain HTTP door's connections: how many there may be, how long one may take to send a request, and which
//! one gives way when they are all taken.
//!
//! Every connection holds a descriptor, and the daemon shares its descriptors with the Admin API, libvirt and
//! SQLite: the door keeps at most `max_connections` (set below the process's limit). When that many are open, a
//! new one takes the place of the oldest that has not sent a request yet, so idle or slow clients cannot keep a
//! client that sends its request at once from being served. Connections that are serving a request are never
//! evicted; one that has not sent its request headers within `request_timeout` is closed by hyper.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// What the plain HTTP door allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// How long a client has to send a request's headers, also when it keeps a connection open for the next.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 512, request_timeout: Duration::from_secs(60) }
    }
}

/// One open connection as the door keeps track of it.
struct Entry {
    id: u64,
    /// Set once a request arrived: from then on the connection is being used, not merely held.
    used: Arc<AtomicBool>,
    /// Closes the connection when sent (or dropped).
    close: Option<oneshot::Sender<()>>,
}

/// The open connections, oldest first, and the slots they take.
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    open: Mutex<VecDeque<Entry>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A connection's place in the door: its slot, the flag its requests set, and what tells it to close.
pub(crate) struct Admitted {
    pub id: u64,
    pub used: Arc<AtomicBool>,
    pub closed: oneshot::Receiver<()>,
    _slot: OwnedSemaphorePermit,
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections {
            slots: Arc::new(Semaphore::new(max.max(1))),
            open: Mutex::new(VecDeque::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A slot for a new connection: a free one, else the one the oldest unused connection gives up. `None`
    /// when every connection is in use (the new one is then closed at once).
    pub async fn admit(&self) -> Option<Admitted> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !self.evict_oldest_unused() {
                    return None;
                }
                // The evicted connection's task lets go of its slot as it ends.
                tokio::time::timeout(Duration::from_secs(1), self.slots.clone().acquire_owned()).await.ok()?.ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let used = Arc::new(AtomicBool::new(false));
        let (close, closed) = oneshot::channel();
        self.open.lock().push_back(Entry { id, used: used.clone(), close: Some(close) });
        Some(Admitted { id, used, closed, _slot: slot })
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, id: u64) {
        self.open.lock().retain(|e| e.id != id);
    }

    fn evict_oldest_unused(&self) -> bool {
        let mut open = self.open.lock();
        let Some(entry) = open.iter_mut().find(|e| !e.used.load(Ordering::Relaxed) && e.close.is_some()) else {
            return false;
        };
        if let Some(close) = entry.close.take() {
            let _ = close.send(());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_door_evicts_the_oldest_unused_connection_and_never_a_used_one() {
        let door = Connections::new(2);
        let mut first = door.admit().await.expect("first");
        let second = door.admit().await.expect("second");
        second.used.store(true, Ordering::Relaxed);

        // The oldest unused (first) is told to close; its slot frees when it ends.
        let third = {
            let waiting = door.admit();
            tokio::pin!(waiting);
            tokio::select! {
                _ = &mut waiting => panic!("admitted before a slot was free"),
                closed = &mut first.closed => assert!(closed.is_ok()),
            }
            door.remove(first.id);
            drop(first);
            waiting.await.expect("third")
        };
        third.used.store(true, Ordering::Relaxed);

        // Both open connections are in use: nobody gives way.
        assert!(door.admit().await.is_none());
    }
}
