//! The service's audit log as RHEV events: integer ids, the codes and severities of the RHEV guide, and
//! descriptions in oVirt's words. What is recorded, about which qube, by whom, is the service's; this is only
//! its rendering.

use corral_service::{AuditRecord, Happening};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RhevEvent {
    pub id: u64,
    pub code: u32,
    pub severity: &'static str,
    /// Seconds since the epoch.
    pub time: u64,
    pub description: String,
    pub vm: Option<(String, String)>,
    /// The user who caused it, as (id, name).
    pub user: Option<(String, String)>,
    /// The `Correlation-Id` of the request that caused it.
    pub correlation_id: Option<String>,
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

/// Record `r` as a RHEV event; `None` for a record RHEV has no code for.
pub fn rhev_event(r: AuditRecord) -> Option<RhevEvent> {
    let vm_name = r.vm.as_ref().map_or("", |(_, name)| name.as_str());
    let by = r.user.as_ref().map_or(String::new(), |(_, name)| format!(" by {name}"));
    let (code, severity, description) = match &r.what {
        Happening::Event(name) => {
            let (code, severity) = code_of(name)?;
            let what = match name.as_str() {
                "domain-feature-set:corral.cdrom" => "cd changed".to_string(),
                "domain-feature-delete:corral.cdrom" => "cd ejected".to_string(),
                name => name.trim_start_matches("domain-").replace('-', " "),
            };
            (code, severity, format!("VM {vm_name}: {what}"))
        }
        Happening::Session { login, open } => {
            let label = r.user.as_ref().map_or(login.as_str(), |(_, name)| name.as_str());
            let (code, what) = if *open { (30, "logged in") } else { (31, "logged out") };
            (code, "normal", format!("User {label} {what}."))
        }
        Happening::PoweredOff => (33, "normal", format!("VM {vm_name} powered off{by}.")),
        Happening::SuspendStarted => (501, "normal", format!("VM {vm_name} suspending initiated{by}.")),
        Happening::Suspended => (503, "normal", format!("VM {vm_name} suspended{by}.")),
        Happening::SuspendFailed => (502, "error", format!("VM {vm_name} failed to suspend{by}.")),
        Happening::SnapshotStarted => (45, "normal", format!("Snapshot of VM {vm_name} was initiated{by}.")),
        Happening::SnapshotTaken => (68, "normal", format!("Snapshot of VM {vm_name} has been completed.")),
        Happening::SnapshotFailed => (69, "error", format!("Snapshot of VM {vm_name} failed.")),
        Happening::Restored => (47, "normal", format!("VM {vm_name} restored from a snapshot{by}.")),
        Happening::DiskAdded(alias) => (78, "normal", format!("Disk {alias} was added to VM {vm_name}{by}.")),
        Happening::DiskRemoved(alias) => (80, "normal", format!("Disk {alias} was removed from VM {vm_name}{by}.")),
        Happening::NetworkAdded(name) => (942, "normal", format!("Network {name} was added.")),
        Happening::NetworkRemoved(name) => (944, "normal", format!("Network {name} was removed.")),
    };
    Some(RhevEvent {
        id: r.id,
        code,
        severity,
        time: r.time,
        description,
        vm: r.vm,
        user: r.user,
        correlation_id: r.correlation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(what: Happening, user: bool) -> AuditRecord {
        AuditRecord {
            id: 7,
            time: 0,
            what,
            vm: Some(("u".into(), "work".into())),
            user: user.then(|| ("id".into(), "admin@internal".into())),
            correlation_id: None,
        }
    }

    #[test]
    fn records_read_as_ovirt_says_them() {
        let stop = rhev_event(record(Happening::PoweredOff, true)).expect("known");
        assert_eq!((stop.code, stop.description.as_str()), (33, "VM work powered off by admin@internal."));
        let start = rhev_event(record(Happening::Event("domain-start".into()), false)).expect("known");
        assert_eq!((start.code, start.description.as_str()), (153, "VM work: start"));
        assert_eq!(rhev_event(record(Happening::Event("domain-tag-add:x".into()), false)), None);
    }
}
