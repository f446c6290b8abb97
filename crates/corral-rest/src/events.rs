//! `/api/events`: the event bus as RHEV events with integer ids and the lifecycle codes of the RHEV
//! guide, kept in a bounded in-memory log. The HTTP door adds what only it sees: users logging in and out,
//! and the user-initiated stops, suspends, snapshots, restores and cd changes it was asked for.

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
    /// The user who caused it, as (id, name), when the HTTP door knows.
    pub user: Option<(String, String)>,
    /// The `Correlation-Id` of the request that caused it.
    pub correlation_id: Option<String>,
}

#[derive(Default)]
struct Log {
    next: u64,
    events: VecDeque<RhevEvent>,
}

impl Log {
    /// Logs `e` under the next id.
    fn push(&mut self, e: RhevEvent) {
        let id = self.next;
        self.next += 1;
        self.events.push_back(RhevEvent { id, ..e });
        if self.events.len() > KEEP {
            self.events.pop_front();
        }
    }
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
        "domain-feature-set:corral.cdrom" | "domain-feature-delete:corral.cdrom" => (38, "normal"),
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
                    sink.lock().push(rhev);
                }
            }
        });
        EventLog { log }
    }

    /// Logs an event the HTTP door itself saw (see the module's description).
    pub fn record(
        &self,
        code: u32,
        severity: &'static str,
        description: String,
        vm: Option<(String, String)>,
        user: Option<(String, String)>,
    ) {
        // Inside a blocking call the service's thread-local cause is set; in a handler, the request's own.
        let correlation_id =
            corral_service::current_cause().or_else(crate::cause).and_then(|c| c.correlation_id.clone());
        let e = RhevEvent {
            id: 0,
            code,
            severity,
            time: corral_service::now_epoch(),
            description,
            vm,
            user,
            correlation_id,
        };
        self.log.lock().push(e);
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
    let (uuid, user) = {
        // The log is the daemon's own record of what happened; readers see the part their view allows.
        let app = service.view(&corral_core::Principal::AdminVm);
        let uuid = app.domain(&vm_name).map(|d| d.uuid.to_string()).unwrap_or_default();
        let name = event.cause.as_ref().and_then(|c| c.principal.as_ref()).and_then(|p| p.user_name());
        let user = name.and_then(|n| app.user(n)).map(|u| (u.id.to_string(), format!("{}@{}", u.name, u.domain)));
        (uuid, user)
    };
    let what = match event.name.as_str() {
        "domain-feature-set:corral.cdrom" => "cd changed".to_string(),
        "domain-feature-delete:corral.cdrom" => "cd ejected".to_string(),
        name => name.trim_start_matches("domain-").replace('-', " "),
    };
    Some(RhevEvent {
        id: 0,
        code,
        severity,
        time: corral_service::now_epoch(),
        description: format!("VM {vm_name}: {what}"),
        vm: Some((uuid, vm_name)),
        user,
        correlation_id: event.cause.as_ref().and_then(|c| c.correlation_id.clone()),
    })
}
