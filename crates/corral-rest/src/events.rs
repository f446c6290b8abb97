//! `/api/events`: the event bus as RHEV events with integer ids and the lifecycle codes of the RHEV
//! guide, kept in a bounded in-memory log.

use std::collections::VecDeque;
use std::sync::Arc;

use corral_core::Event;
use corral_service::Service;
use parking_lot::Mutex;

/// The oldest events are dropped beyond this many.
const KEEP: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RhevEvent {
    pub id: u64,
    pub code: u32,
    pub severity: &'static str,
    /// Seconds since the epoch.
    pub time: u64,
    pub description: String,
    pub vm: Option<(String, String)>,
}

#[derive(Default)]
struct Log {
    next: u64,
    events: VecDeque<RhevEvent>,
}

pub struct EventLog {
    log: Arc<Mutex<Log>>,
}

/// The RHEV event code and severity of a daemon event, for those RHEV knows.
pub fn code_of(name: &str) -> Option<(u32, &'static str)> {
    Some(match name {
        "domain-add" => (34, "normal"),
        "domain-pre-start" => (32, "normal"),
        "domain-start" => (153, "normal"),
        "domain-start-failed" => (54, "error"),
        "domain-paused" => (39, "normal"),
        "domain-unpaused" => (40, "normal"),
        "domain-pre-shutdown" => (73, "normal"),
        "domain-shutdown-failed" => (74, "error"),
        "domain-shutdown" => (61, "normal"),
        "domain-delete" => (113, "normal"),
        n if n.starts_with("property-set:") => (35, "normal"),
        _ => return None,
    })
}

impl EventLog {
    /// Subscribes to the service's bus; must be called inside the runtime.
    pub fn start(service: &Arc<Service>) -> EventLog {
        let log = Arc::new(Mutex::new(Log { next: 1, events: VecDeque::new() }));
        let mut rx = service.events().subscribe();
        let (sink, service) = (log.clone(), Arc::downgrade(service));
        tokio::spawn(async move {
            // Qubes' ids by name, so that events about a qube that is already gone still carry its id.
            let mut known: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(service) = service.upgrade() else { return };
                if let Some(mut rhev) = map(&service, &event) {
                    if let Some((id, name)) = rhev.vm.as_mut() {
                        if event.name == "domain-delete" {
                            *id = known.remove(name.as_str()).unwrap_or_default();
                        } else if id.is_empty() {
                            *id = known.get(name.as_str()).cloned().unwrap_or_default();
                        } else {
                            known.insert(name.clone(), id.clone());
                        }
                    }
                    let mut log = sink.lock();
                    let id = log.next;
                    log.next += 1;
                    log.events.push_back(RhevEvent { id, ..rhev });
                    if log.events.len() > KEEP {
                        log.events.pop_front();
                    }
                }
            }
        });
        EventLog { log }
    }

    /// Events with an id greater than `from`, oldest first.
    pub fn since(&self, from: u64) -> Vec<RhevEvent> {
        self.log.lock().events.iter().filter(|e| e.id > from).cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<RhevEvent> {
        self.log.lock().events.iter().find(|e| e.id == id).cloned()
    }
}

fn map(service: &Service, event: &Event) -> Option<RhevEvent> {
    let (code, severity) = code_of(&event.name)?;
    let vm_name =
        event.subject.clone().or_else(|| event.kwargs.iter().find(|(k, _)| k == "vm").map(|(_, v)| v.clone()))?;
    let uuid = service.read().domain(&vm_name).map(|d| d.uuid.to_string()).unwrap_or_default();
    let what = event.name.trim_start_matches("domain-").replace('-', " ");
    Some(RhevEvent {
        id: 0,
        code,
        severity,
        time: corral_service::now_epoch(),
        description: format!("VM {vm_name}: {what}"),
        vm: Some((uuid, vm_name)),
    })
}
