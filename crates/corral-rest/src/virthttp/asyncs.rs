//! `?async=true`: the request runs in the background and its envelope waits under an 8-hex-digit id
//! until `GET /libvirt/async/{id}` takes it (once), at most 120 s after it was ready.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a finished request's envelope is kept for its client.
pub const EXPIRY: Duration = Duration::from_secs(120);

/// More requests than this in flight or waiting to be taken are refused rather than kept in memory.
const CAPACITY: usize = 4096;

enum Task {
    Running,
    Done { body: String, at: Instant },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Unknown,
    Running,
    Done(String),
}

#[derive(Default)]
pub struct AsyncStore {
    tasks: Mutex<HashMap<u32, Task>>,
}

/// The id as the client sees it: eight lowercase hex digits.
pub fn encode(id: u32) -> String {
    format!("{id:08x}")
}

/// virthttp accepts 1 to 8 hex digits in any case.
pub fn decode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

fn collect_expired(tasks: &mut HashMap<u32, Task>) {
    tasks.retain(|_, t| match t {
        Task::Running => true,
        Task::Done { at, .. } => at.elapsed() < EXPIRY,
    });
}

impl AsyncStore {
    /// Runs `work` in the background; `None` when the store is full. Ids are random, so that one client
    /// cannot guess another's.
    pub fn launch(self: &Arc<Self>, work: impl Future<Output = String> + Send + 'static) -> Option<u32> {
        let id = {
            let mut tasks = self.tasks.lock();
            collect_expired(&mut tasks);
            if tasks.len() >= CAPACITY {
                return None;
            }
            let mut id = rand::random::<u32>();
            while tasks.contains_key(&id) {
                id = rand::random::<u32>();
            }
            tasks.insert(id, Task::Running);
            id
        };
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let body = work.await;
            store.tasks.lock().insert(id, Task::Done { body, at: Instant::now() });
        });
        Some(id)
    }

    /// A finished envelope is handed out once.
    pub fn take(&self, id: u32) -> Lookup {
        let mut tasks = self.tasks.lock();
        collect_expired(&mut tasks);
        match tasks.get(&id) {
            None => Lookup::Unknown,
            Some(Task::Running) => Lookup::Running,
            Some(Task::Done { .. }) => match tasks.remove(&id) {
                Some(Task::Done { body, .. }) => Lookup::Done(body),
                _ => Lookup::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_hex_digits_both_ways() {
        assert_eq!(encode(0xab), "000000ab");
        assert_eq!(decode("000000AB"), Some(0xab));
        assert_eq!(decode("123456789"), None);
        assert_eq!(decode("xyz"), None);
    }

    #[tokio::test]
    async fn a_finished_envelope_is_given_once() {
        let store = Arc::new(AsyncStore::default());
        let id = store.launch(async { "body".to_string() }).expect("room");
        let first = loop {
            match store.take(id) {
                Lookup::Running => tokio::task::yield_now().await,
                other => break other,
            }
        };

        assert_eq!((first, store.take(id)), (Lookup::Done("body".into()), Lookup::Unknown));
    }
}
