//! What the hypervisor connection tells beyond a qube's power state: whether there is one, its
//! version, the counters of a running qube's disks and network card with their rates per second, and its CPU
//! use between two samples.

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

/// Shorter CPU-use and rate windows are too coarse to mean anything.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// Samples not asked about again within this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A disk's counters and the bytes it read and wrote per second lately.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskRates {
    pub counters: BlockStats,
    pub read_per_second: f64,
    pub write_per_second: f64,
}

/// A network card's counters and the bytes it received and sent per second lately.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NicRates {
    pub counters: InterfaceStats,
    pub rx_per_second: f64,
    pub tx_per_second: f64,
}

/// The previous sample of each set of growing counters asked about, by key: when it was read, and the values.
pub(crate) type RateSamples = parking_lot::Mutex<std::collections::HashMap<String, (Instant, Vec<u64>)>>;

/// The counters `sample` reads now and their rates per second (RHEV's `data.current.*`): the growth since the
/// previous call's sample under `key` when that is at least `MIN_WINDOW` old, else between two samples that
/// far apart. `None` while `sample` has nothing to read (a halted qube). Sleeps for the window when it needs
/// a second sample.
fn per_second(
    samples: &RateSamples,
    key: String,
    sample: impl Fn() -> Result<Option<Vec<u64>>>,
) -> Result<Option<(Vec<u64>, Vec<f64>)>> {
    let read = || sample().map(|s| s.map(|values| (Instant::now(), values)));
    let Some((mut at, mut now)) = read()? else {
        samples.lock().remove(&key);
        return Ok(None);
    };
    // A sample from before a restart of the qube (counters back at zero) is no base.
    let previous = samples
        .lock()
        .get(&key)
        .cloned()
        .filter(|(t, before)| *t < at && before.len() == now.len() && before.iter().zip(&now).all(|(b, n)| b <= n));
    let (base_at, base) = match previous {
        Some((t, before)) if at.duration_since(t) >= MIN_WINDOW => (t, before),
        first_or_recent => {
            let (t, before) = first_or_recent.unwrap_or((at, now.clone()));
            std::thread::sleep(MIN_WINDOW.saturating_sub(at.duration_since(t)));
            match read()? {
                Some(later) => (at, now) = later,
                None => return Ok(None),
            }
            (t, before)
        }
    };
    {
        let mut last = samples.lock();
        last.retain(|_, (t, _)| t.elapsed() < FORGET_AFTER);
        last.insert(key, (at, now.clone()));
    }
    let seconds = at.duration_since(base_at).as_secs_f64();
    let rates = now
        .iter()
        .zip(&base)
        .map(|(n, b)| if seconds > 0.0 { n.saturating_sub(*b) as f64 / seconds } else { 0.0 })
        .collect();
    Ok(Some((now, rates)))
}

impl Service {
    /// Qube `vm`'s disk for `volume`: its counters and rates while the qube runs (`None` while halted).
    pub(crate) fn disk_rates(&self, caller: &Principal, vm: &str, volume: &str) -> Result<Option<DiskRates>> {
        let uuid = resolve_in(&self.current(), vm)?.uuid;
        let sample = || Ok(self.disk_counters(caller, vm, volume)?.map(|c| vec![c.read_bytes, c.write_bytes]));
        let sampled = per_second(&self.rate_samples, format!("disk/{uuid}/{volume}"), sample)?;
        Ok(sampled.map(|(now, rates)| DiskRates {
            counters: BlockStats { read_bytes: now[0], write_bytes: now[1] },
            read_per_second: rates[0],
            write_per_second: rates[1],
        }))
    }

    /// Qube `vm`'s network card: its counters and rates while the qube runs connected (`None` otherwise).
    pub(crate) fn nic_rates(&self, caller: &Principal, vm: &str) -> Result<Option<NicRates>> {
        let uuid = resolve_in(&self.current(), vm)?.uuid;
        let sample = || {
            let counters = self.nic_counters(caller, vm)?;
            Ok(counters.map(|c| vec![c.rx_bytes, c.tx_bytes, c.rx_errors, c.tx_errors]))
        };
        let sampled = per_second(&self.rate_samples, format!("nic/{uuid}"), sample)?;
        Ok(sampled.map(|(now, rates)| NicRates {
            counters: InterfaceStats { rx_bytes: now[0], tx_bytes: now[1], rx_errors: now[2], tx_errors: now[3] },
            rx_per_second: rates[0],
            tx_per_second: rates[1],
        }))
    }
}

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

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_are_the_growth_per_second_between_two_samples() {
        let samples = RateSamples::default();
        let start = Instant::now();
        // 1,000 units per second of wall time, 0 for the second counter.
        let sample = move || Ok(Some(vec![start.elapsed().as_millis() as u64, 7]));

        let (_, rates) = per_second(&samples, "grow".into(), sample).expect("sampled").expect("values");

        assert!((800.0..=1200.0).contains(&rates[0]), "{rates:?}");
        assert_eq!(rates[1], 0.0);
    }

    #[test]
    fn nothing_to_sample_is_none_and_forgets_the_base() {
        let samples = RateSamples::default();
        samples.lock().insert("none".into(), (Instant::now(), vec![1]));

        assert!(per_second(&samples, "none".into(), || Ok(None)).expect("sampled").is_none());
        assert!(!samples.lock().contains_key("none"));
    }

    #[test]
    fn counters_that_went_back_start_a_new_window() {
        let samples = RateSamples::default();
        samples.lock().insert("reset".into(), (Instant::now() - Duration::from_secs(5), vec![1_000_000]));

        let (now, rates) =
            per_second(&samples, "reset".into(), || Ok(Some(vec![10]))).expect("sampled").expect("values");

        assert_eq!((now, rates), (vec![10], vec![0.0]));
    }
}
