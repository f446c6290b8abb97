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
        let correlation = current_correlation();
        for mut e in events {
            if e.correlation_id.is_none() {
                e.correlation_id.clone_from(&correlation);
            }
            // No subscribers is the common case and not an error.
            let _ = self.tx.send(Arc::new(e));
        }
    }
}

thread_local! {
    static CORRELATION: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `id` as the correlation id of every event published on this thread meanwhile: a door
/// wraps the service calls of one request in it (RHEV's `Correlation-Id`).
pub fn with_correlation<T>(id: Option<Arc<str>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CORRELATION.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CORRELATION.with(|c| c.replace(id)));
    f()
}

/// The correlation id `with_correlation` set on this thread, if any.
pub fn current_correlation() -> Option<Arc<str>> {
    CORRELATION.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod correlation_tests {
    use super::*;

    #[test]
    fn events_published_inside_carry_the_id_and_outside_none() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();

        with_correlation(Some("job-7".into()), || bus.publish_all(vec![Event::global("inside")]));
        bus.publish_all(vec![Event::global("outside")]);

        assert_eq!(rx.try_recv().expect("inside").correlation_id.as_deref(), Some("job-7"));
        assert_eq!(rx.try_recv().expect("outside").correlation_id, None);
    }

    #[test]
    fn the_previous_id_comes_back_even_after_a_panic() {
        with_correlation(Some("outer".into()), || {
            let _ = std::panic::catch_unwind(|| with_correlation(Some("inner".into()), || panic!("boom")));
            assert_eq!(current_correlation().as_deref(), Some("outer"));
        });
        assert_eq!(current_correlation(), None);
    }
}
