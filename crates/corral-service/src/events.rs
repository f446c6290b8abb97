//! The event bus: every committed change's events, in commit order, to every subscriber.

use std::sync::Arc;

use corral_core::Event;
use tokio::sync::broadcast;

/// A subscriber that falls this far behind is disconnected rather than slowing the daemon down.
const BACKLOG: usize = 16384;

pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        EventBus { tx: broadcast::channel(BACKLOG).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn publish_all(&self, events: Vec<Event>) {
        for e in events {
            // No subscribers is the common case and not an error.
            let _ = self.tx.send(Arc::new(e));
        }
    }
}
