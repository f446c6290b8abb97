//! The event bus: every committed change's events, in commit order, to every subscriber.

use std::sync::Arc;

use corral_core::{Cause, Event, Operation, Principal};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

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

    /// A subscription to the events of `vm` (of every qube, and the host's own, when `vm` is `dom0`) for
    /// `principal`, who was allowed `admin.Events` on `vm`.
    pub fn subscription(&self, principal: Principal, vm: String) -> Subscription {
        Subscription { rx: self.tx.subscribe(), principal, vm }
    }

    pub fn publish_all(&self, events: Vec<Event>) {
        let cause = current_cause();
        for mut e in events {
            if e.cause.is_none() {
                e.cause.clone_from(&cause);
            }
            // No subscribers is the common case and not an error.
            let _ = self.tx.send(Arc::new(e));
        }
    }
}

/// An accepted `admin.Events` subscription.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    principal: Principal,
    vm: String,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionEnded {
    /// The subscriber read too slowly and this many events were dropped for it.
    FellBehind(u64),
    /// The daemon is going away.
    Closed,
}

/// Internal events that `admin.Events` never forwards.
fn is_internal(name: &str) -> bool {
    name.starts_with("admin-permission:")
        || name.starts_with("device-get:")
        || name.starts_with("device-list:")
        || name.starts_with("device-list-attached:")
        || name == "domain-is-fully-usable"
}

impl Subscription {
    /// The next event the subscriber may see: one about the qube it follows, or, following every qube, one
    /// about a qube `admin.Events` is allowed on for it, or about the host.
    pub async fn next(&mut self, service: &crate::Service) -> Result<Arc<Event>, SubscriptionEnded> {
        let all = self.vm == corral_core::domain::DOM0;
        loop {
            let event = match self.rx.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(n)) => return Err(SubscriptionEnded::FellBehind(n)),
                Err(RecvError::Closed) => return Err(SubscriptionEnded::Closed),
            };
            if is_internal(&event.name) {
                continue;
            }
            let visible = match event.subject.as_deref() {
                Some(subject) if all => {
                    service.authorize(&self.principal, &Operation::new("admin.Events", "", subject)).is_ok()
                }
                Some(subject) => subject == self.vm,
                None => all,
            };
            if visible {
                return Ok(event);
            }
        }
    }
}

thread_local! {
    static CAUSE: std::cell::RefCell<Option<Arc<Cause>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `cause` as the cause of every event published on this thread meanwhile: a door wraps
/// the service calls of one request in it (its user, RHEV's `Correlation-Id`).
pub fn with_cause<T>(cause: Option<Arc<Cause>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<Cause>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CAUSE.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CAUSE.with(|c| c.replace(cause)));
    f()
}

/// The cause `with_cause` set on this thread, if any.
pub fn current_cause() -> Option<Arc<Cause>> {
    CAUSE.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod cause_tests {
    use super::*;

    fn tagged(id: &str) -> Option<Arc<Cause>> {
        Some(Arc::new(Cause {
            correlation_id: Some(id.into()),
            principal: Some(corral_core::Principal::User {
                name: "admin".into(),
                credential: corral_core::Credential::Password,
            }),
        }))
    }

    #[test]
    fn events_published_inside_carry_the_cause_and_outside_none() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();

        with_cause(tagged("job-7"), || bus.publish_all(vec![Event::global("inside")]));
        bus.publish_all(vec![Event::global("outside")]);

        assert_eq!(rx.try_recv().expect("inside").cause, tagged("job-7"));
        assert_eq!(rx.try_recv().expect("outside").cause, None);
    }

    #[test]
    fn the_previous_cause_comes_back_even_after_a_panic() {
        with_cause(tagged("outer"), || {
            let _ = std::panic::catch_unwind(|| with_cause(tagged("inner"), || panic!("boom")));
            assert_eq!(current_cause(), tagged("outer"));
        });
        assert_eq!(current_cause(), None);
    }
}
