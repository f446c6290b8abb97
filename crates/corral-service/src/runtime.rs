//! What the hypervisor says about running qubes, kept beside the model: power state, start time, xid.
//! Not durable: after a daemon restart it is rebuilt from libvirt (`reconcile`).

use std::collections::HashMap;

use corral_core::hv::{ConsoleAddress, PowerState};
use parking_lot::Mutex;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub state: PowerState,
    /// Seconds since the epoch, as upstream's `start_time` property shows it.
    pub start_time: f64,
    pub xid: Option<u32>,
    /// Whether the domain has a cdrom drive: known for a start this daemon made, `None` for one it found
    /// running (libvirt then answers a media change itself).
    pub cdrom_drive: Option<bool>,
    /// Where its graphical console answers, read from libvirt once it runs.
    pub console: Option<ConsoleAddress>,
}

#[derive(Default)]
pub struct Runtime {
    qubes: Mutex<HashMap<Uuid, Running>>,
}

impl Runtime {
    pub fn get(&self, uuid: &Uuid) -> Option<Running> {
        self.qubes.lock().get(uuid).cloned()
    }

    pub fn state(&self, uuid: &Uuid) -> PowerState {
        self.qubes.lock().get(uuid).map_or(PowerState::Halted, |r| r.state)
    }

    /// Records a new state; returns the previous one.
    pub fn set_state(&self, uuid: Uuid, state: PowerState) -> PowerState {
        let mut qubes = self.qubes.lock();
        if !state.is_active() {
            return qubes.remove(&uuid).map_or(PowerState::Halted, |r| r.state);
        }
        match qubes.get_mut(&uuid) {
            Some(r) => std::mem::replace(&mut r.state, state),
            None => {
                qubes.insert(uuid, Running { state, start_time: now(), xid: None, cdrom_drive: None, console: None });
                PowerState::Halted
            }
        }
    }

    /// A saved qube has no xid; a restored one gets a new one.
    pub fn set_xid(&self, uuid: Uuid, xid: Option<u32>) {
        if let Some(r) = self.qubes.lock().get_mut(&uuid) {
            r.xid = xid;
        }
    }

    pub fn set_running(&self, uuid: Uuid, running: Running) {
        self.qubes.lock().insert(uuid, running);
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
