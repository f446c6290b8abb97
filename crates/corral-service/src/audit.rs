//! The audit log: what happened to qubes, networks and sessions, by whom and through which request, kept in a
//! bounded in-memory log under increasing ids. It holds the lifecycle and settings events the bus carries,
//! and what users did that no event tells (a power-off rather than a qube going down, a snapshot, a disk
//! added): those are noted by the operations themselves. Doors render it in their own vocabulary (RHEV's
//! `/api/events` with its codes), each reader seeing what their [`crate::View`] allows.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use corral_core::{App, Domain, Event, Principal};
use parking_lot::Mutex;

/// The oldest records are dropped beyond this many.
const KEEP: usize = 10_000;

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// An event of the bus, by its name (`domain-start`, `property-set:memory`, …).
    Event(String),
    /// User `login` opened a session (`open`) or ended one.
    Session {
        login: String,
        open: bool,
    },
    /// A user powered a running qube off.
    PoweredOff,
    SuspendStarted,
    Suspended,
    SuspendFailed,
    SnapshotStarted,
    SnapshotTaken,
    SnapshotFailed,
    /// A volume was reverted to one of its revisions.
    Restored,
    /// A further disk, by its alias, was added to or removed from the qube.
    DiskAdded(String),
    DiskRemoved(String),
    /// A network, by its name, was defined or removed.
    NetworkAdded(String),
    NetworkRemoved(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: u64,
    /// Seconds since the epoch.
    pub time: u64,
    pub what: Happening,
    /// The qube it is about, as (uuid, name); the uuid is empty when the qube was gone before it was known.
    pub vm: Option<(String, String)>,
    /// The user who caused it, as (id, `name@domain`), while that user exists.
    pub user: Option<(String, String)>,
    /// The client's tag of the request that caused it (RHEV's `Correlation-Id`).
    pub correlation_id: Option<String>,
}

/// The bus events the log keeps: a qube's lifecycle, its settings and its media. The rest (tags, features,
/// volumes' own events…) are details the bus's subscribers follow.
pub fn is_audited(name: &str) -> bool {
    matches!(
        name,
        "domain-add"
            | "domain-pre-start"
            | "domain-start"
            | "domain-start-failed"
            | "domain-paused"
            | "domain-unpaused"
            | "domain-pre-shutdown"
            | "domain-shutdown-failed"
            | "domain-shutdown"
            | "domain-delete"
            | "domain-feature-set:corral.cdrom"
            | "domain-feature-delete:corral.cdrom"
    ) || name.starts_with("property-set:")
}

#[derive(Default)]
struct Log {
    next: u64,
    records: VecDeque<AuditRecord>,
    /// Qubes' uuids by name, so that a record about a qube that is already gone still carries its uuid.
    known: HashMap<String, String>,
}

#[derive(Default)]
pub struct AuditLog {
    log: Mutex<Log>,
}

impl AuditLog {
    fn push(&self, mut record: AuditRecord) {
        let mut log = self.log.lock();
        log.next += 1;
        record.id = log.next;
        if let Some((uuid, name)) = record.vm.as_mut() {
            if record.what == Happening::Event("domain-delete".into()) {
                *uuid = log.known.remove(name.as_str()).unwrap_or_default();
            } else if uuid.is_empty() {
                *uuid = log.known.get(name.as_str()).cloned().unwrap_or_default();
            } else {
                log.known.insert(name.clone(), uuid.clone());
            }
        }
        log.records.push_back(record);
        if log.records.len() > KEEP {
            log.records.pop_front();
        }
    }

    /// Records with an id greater than `from`, oldest first.
    pub(crate) fn since(&self, from: u64) -> Vec<AuditRecord> {
        self.log.lock().records.iter().filter(|r| r.id > from).cloned().collect()
    }

    pub(crate) fn get(&self, id: u64) -> Option<AuditRecord> {
        self.log.lock().records.iter().find(|r| r.id == id).cloned()
    }

    /// Logs bus event `event` if it is one the log keeps, as `app` names its qube and user.
    pub(crate) fn note_event(&self, app: &App, event: &Event) {
        if !is_audited(&event.name) {
            return;
        }
        let vm = event.subject.clone().or_else(|| event.kwargs.iter().find(|(k, _)| k == "vm").map(|(_, v)| v.clone()));
        // Events of the host itself (none audited today) would have no qube to show.
        let Some(vm) = vm else { return };
        let uuid = app.domain(&vm).map(|d| d.uuid.to_string()).unwrap_or_default();
        let principal = event.cause.as_ref().and_then(|c| c.principal.as_ref());
        self.push(AuditRecord {
            id: 0,
            time: crate::now_epoch(),
            what: Happening::Event(event.name.clone()),
            vm: Some((uuid, vm)),
            user: principal.and_then(|p| user_of(app, p)),
            correlation_id: event.cause.as_ref().and_then(|c| c.correlation_id.clone()),
        });
    }

    /// Logs what user `principal` did, about qube `vm` if any, under the current request's correlation id.
    /// The log keeps what users do; what a qube's or dom0's own tools do shows by the events it fires.
    pub(crate) fn note(&self, app: &App, principal: &Principal, what: Happening, vm: Option<&Domain>) {
        if principal.user_name().is_none() {
            return;
        }
        self.push(AuditRecord {
            id: 0,
            time: crate::now_epoch(),
            what,
            vm: vm.map(|d| (d.uuid.to_string(), d.name.to_string())),
            user: user_of(app, principal),
            correlation_id: crate::current_cause().and_then(|c| c.correlation_id.clone()),
        });
    }
}

/// The user `principal` is, as (id, `name@domain`), while that user exists.
fn user_of(app: &App, principal: &Principal) -> Option<(String, String)> {
    let u = app.users().find(|u| Some(u.name.as_str()) == principal.user_name())?;
    Some((u.id.to_string(), format!("{}@{}", u.name, u.domain)))
}

impl crate::Service {
    /// Feeds the bus's events into the audit log from now on; the first call starts it, inside the runtime.
    pub fn start_audit(self: &Arc<Self>) {
        if self.audit_following.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let mut rx = self.events.subscribe();
        let service = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(service) = service.upgrade() else { return };
                let app = service.current().clone();
                service.audit.note_event(&app, &event);
            }
        });
    }

    /// Notes what `principal` did to qube `vm` (a name or `uuid:` token, as the request gave it).
    pub(crate) fn audit_vm(&self, principal: &Principal, what: Happening, vm: &str) {
        let app = self.current().clone();
        if let Ok(d) = crate::resolve_in(&app, vm) {
            self.audit.note(&app, principal, what, Some(d));
        }
    }

    /// The alias of qube `vm`'s disk for `volume`, as records name it.
    pub(crate) fn disk_alias_of(&self, vm: &str, volume: &str) -> Option<String> {
        let app = self.current().clone();
        let d = crate::resolve_in(&app, vm).ok()?;
        d.volume(volume).map(|v| d.disk_alias(v))
    }

    pub(crate) fn audit_global(&self, principal: &Principal, what: Happening) {
        let app = self.current().clone();
        self.audit.note(&app, principal, what, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lifecycle_settings_and_media_events_are_kept() {
        assert!(is_audited("domain-start") && is_audited("property-set:memory"));
        assert!(is_audited("domain-feature-set:corral.cdrom"));
        assert!(!is_audited("domain-tag-add:x") && !is_audited("domain-feature-set:other"));
    }

    #[test]
    fn what_users_do_is_noted_and_what_qubes_do_is_not() {
        let (log, app) = (AuditLog::default(), App::empty(corral_core::HostInfo { memory_mib: 1024, cpus: 1 }));
        let user = Principal::User { name: "alice".into(), credential: corral_core::Credential::Password };

        log.note(&app, &Principal::AdminVm, Happening::PoweredOff, None);
        log.note(&app, &Principal::Qube("work".into()), Happening::PoweredOff, None);
        log.note(&app, &user, Happening::Session { login: "alice".into(), open: true }, None);

        let all = log.since(0);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].what, Happening::Session { login: "alice".into(), open: true });
    }

    #[test]
    fn bus_events_outside_the_audited_set_are_not_kept() {
        let (log, app) = (AuditLog::default(), App::empty(corral_core::HostInfo { memory_mib: 1024, cpus: 1 }));

        log.note_event(&app, &Event::on("work", "domain-tag-add:x"));
        log.note_event(&app, &Event::on("work", "domain-start"));

        let all = log.since(0);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].vm, Some((String::new(), "work".into())));
    }

    #[test]
    fn a_qube_gone_keeps_its_uuid_and_ids_grow() {
        let log = AuditLog::default();
        let record = |what: &str, uuid: &str| AuditRecord {
            id: 0,
            time: 0,
            what: Happening::Event(what.into()),
            vm: Some((uuid.into(), "work".into())),
            user: None,
            correlation_id: None,
        };
        log.push(record("domain-add", "u-1"));
        log.push(record("domain-delete", ""));

        let all = log.since(0);
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(all[1].vm, Some(("u-1".into(), "work".into())));
        assert_eq!(log.since(1).len(), 1);
        assert_eq!(log.get(2).map(|r| r.what), Some(Happening::Event("domain-delete".into())));
    }
}
