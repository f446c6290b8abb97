//! What the hypervisor connection tells beyond a qube's power state: whether there is one, its
//! version, the counters of a running qube's disks and network card, and its CPU use between two samples.

use std::time::{Duration, Instant};

use corral_core::hv::{BlockStats, DomainInfo, InterfaceStats};
use corral_core::{Error, Result};

use crate::{resolve_in, Principal, Service};

impl Service {
    /// Whether qubes can run: the daemon serves everything else without a hypervisor connection.
    pub(crate) fn has_hypervisor(&self) -> bool {
        self.hv.is_some()
    }

    /// libvirt's version number (`major * 1_000_000 + minor * 1_000 + release`). Blocks on libvirt.
    pub(crate) fn libvirt_version(&self) -> Option<u32> {
        self.hv.as_ref().and_then(|hv| hv.library_version())
    }

    /// The counters of qube `vm`'s disk for volume `volume` while it runs (`None` while halted). Blocks
    /// on libvirt.
    pub(crate) fn disk_counters(&self, caller: &Principal, vm: &str, volume: &str) -> Result<Option<BlockStats>> {
        self.auth(caller, "corral.vm.DiskStats", volume, vm)?;
        let d = resolve_in(&self.current(), vm)?.clone();
        if d.volume(volume).is_none() {
            return Err(crate::revisions::no_volume(&d.name, volume));
        }
        if !self.power(&d).is_live() {
            return Ok(None);
        }
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        let target = crate::lifecycle::disk_target(volume);
        hv.block_stats(&d.uuid, &target).map(Some).map_err(Error::from)
    }

    /// The counters of qube `vm`'s network card while it runs (`None` while halted or unconnected).
    /// Blocks on libvirt.
    pub(crate) fn nic_counters(&self, caller: &Principal, vm: &str) -> Result<Option<InterfaceStats>> {
        self.auth(caller, "corral.vm.NicStats", "", vm)?;
        let (d, mac, connected) = {
            let app = self.current();
            let d = resolve_in(&app, vm)?.clone();
            let mac = crate::lifecycle::bridge_mac(&d);
            let connected = app.nic_network(&d).is_some();
            (d, mac, connected)
        };
        if !connected || !self.power(&d).is_live() {
            return Ok(None);
        }
        let hv = self.hv.as_ref().ok_or_else(|| self.no_hypervisor())?;
        hv.interface_stats(&d.uuid, &mac).map(Some).map_err(Error::from)
    }
}

/// Shorter CPU-use windows are too coarse to mean anything.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// The previous cpu_time sample of each qube asked about: "current" CPU use is the average since then.
pub(crate) type CpuSamples = parking_lot::Mutex<std::collections::HashMap<uuid::Uuid, (Instant, u64)>>;

impl Service {
    /// libvirt's figures of qube `vm` and its CPU use in percent of its vcpus since the previous call (or over
    /// `MIN_WINDOW` when there was none, or it was too recent); 0 for a qube that does not run. Blocks on
    /// libvirt, and sleeps for the window when it needs a second sample.
    pub(crate) fn cpu_usage(&self, vm: &str) -> Result<(DomainInfo, f64)> {
        let d = resolve_in(&self.current(), vm)?.clone();
        let sample = || (self.domain_info(&d), Instant::now());
        let (mut info, mut at) = sample();
        if !info.state.is_live() {
            self.cpu_samples.lock().remove(&d.uuid);
            return Ok((info, 0.0));
        }
        let previous =
            self.cpu_samples.lock().get(&d.uuid).copied().filter(|(t, ns)| *t < at && *ns <= info.cpu_time_ns);
        let (before_at, before_ns) = match previous {
            Some((t, ns)) if at.duration_since(t) >= MIN_WINDOW => (t, ns),
            first_or_recent => {
                let (t, ns) = first_or_recent.unwrap_or((at, info.cpu_time_ns));
                std::thread::sleep(MIN_WINDOW.saturating_sub(at.duration_since(t)));
                (info, at) = sample();
                (t, ns)
            }
        };
        {
            let mut last = self.cpu_samples.lock();
            // Forget qubes not asked about for a while.
            last.retain(|_, (t, _)| t.elapsed() < Duration::from_secs(600));
            last.insert(d.uuid, (at, info.cpu_time_ns));
        }
        let wall_ns = at.duration_since(before_at).as_nanos() as f64 * f64::from(info.vcpus.max(1));
        let used_ns = info.cpu_time_ns.saturating_sub(before_ns) as f64;
        Ok((info, if wall_ns > 0.0 { (used_ns * 100.0 / wall_ns).min(100.0) } else { 0.0 }))
    }
}
