//! Storage pools and the volumes qubes own, as configuration. Files on disk belong to `corral-storage`.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Failure, Result};
use crate::text::pyrepr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    File,
    LinuxKernel,
}

impl Driver {
    pub const ALL: [Driver; 2] = [Driver::File, Driver::LinuxKernel];

    pub fn name(self) -> &'static str {
        match self {
            Driver::File => "file",
            Driver::LinuxKernel => "linux-kernel",
        }
    }

    pub fn from_name(name: &str) -> Option<Driver> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Constructor parameters in upstream's order, as `admin.pool.ListDrivers` prints them.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            Driver::File => &["revisions_to_keep", "dir_path", "ephemeral_volatile"],
            Driver::LinuxKernel => &["dir_path"],
        }
    }

    pub fn required_parameters(self) -> &'static [&'static str] {
        &["dir_path"]
    }

    /// The file driver keeps at most one revision; deeper history needs reflink or qcow2 pools.
    pub fn max_revisions(self) -> i64 {
        match self {
            Driver::File => 1,
            Driver::LinuxKernel => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub driver: Driver,
    pub dir_path: String,
    pub revisions_to_keep: i64,
    pub ephemeral_volatile: bool,
}

impl Pool {
    pub fn new(name: &str, driver: Driver, dir_path: &str) -> Self {
        Pool {
            name: name.into(),
            driver,
            dir_path: dir_path.into(),
            revisions_to_keep: if driver == Driver::File { 1 } else { 0 },
            ephemeral_volatile: false,
        }
    }

    /// The configuration `admin.pool.Info` prints, sorted by key.
    pub fn config(&self) -> BTreeMap<&'static str, String> {
        let mut c = BTreeMap::new();
        c.insert("dir_path", self.dir_path.clone());
        c.insert("driver", self.driver.name().to_string());
        c.insert("name", self.name.clone());
        if self.driver == Driver::File {
            c.insert("ephemeral_volatile", crate::text::format_bool(self.ephemeral_volatile).to_string());
            c.insert("revisions_to_keep", self.revisions_to_keep.to_string());
        }
        c
    }

    /// Builds a pool from `admin.pool.Add` parameters (already split into `key=value`).
    pub fn from_parameters(driver: Driver, params: &BTreeMap<String, String>) -> Result<Pool> {
        // qubesd's messages, in its order of checks.
        let name = params.get("name").ok_or_else(|| Error::protocol("Pool configuration must contain key: name"))?;
        if !crate::text::is_safe_name(name) {
            return Err(Error::protocol(
                "Pool name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
            ));
        }
        if params.keys().any(|key| key != "name" && !driver.parameters().contains(&key.as_str())) {
            return Err(Error::protocol("Unexpected driver options found"));
        }
        let missing: Vec<&str> =
            driver.required_parameters().iter().copied().filter(|p| !params.contains_key(*p)).collect();
        if !missing.is_empty() {
            return Err(Error::generic(format!("missing required driver options: {}", missing.join(" "))));
        }
        let dir_path = params.get("dir_path").cloned().unwrap_or_default();
        if !dir_path.starts_with('/') || dir_path.contains(char::is_whitespace) {
            return Err(Error::value(format!(
                "dir_path must be an absolute path without spaces: {}",
                pyrepr(&dir_path)
            )));
        }
        let mut pool = Pool::new(name, driver, &dir_path);
        if let Some(v) = params.get("revisions_to_keep") {
            pool.revisions_to_keep = parse_revisions_to_keep(v)?;
            check_revisions_limit(driver, pool.revisions_to_keep)?;
        }
        if let Some(v) = params.get("ephemeral_volatile") {
            pool.ephemeral_volatile = crate::text::parse_bool(v)
                .ok_or_else(|| Error::value(format!("Invalid ephemeral_volatile value: {}", pyrepr(v))))?;
        }
        Ok(pool)
    }
}

pub fn parse_revisions_to_keep(s: &str) -> Result<i64> {
    let v = crate::text::parse_strict_i64(s).ok_or_else(|| Error::protocol("Invalid value for revisions_to_keep"))?;
    if v < -1 {
        return Err(Error::value("Invalid value for revisions_to_keep"));
    }
    Ok(v)
}

pub fn check_revisions_limit(driver: Driver, n: i64) -> Result<()> {
    if n > driver.max_revisions() {
        return Err(Error::new(
            ErrorKind::Failed(Failure::Storage),
            format!("{} pool cannot keep more than {} revisions", driver.name(), driver.max_revisions()),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub pool: String,
    pub vid: String,
    pub size: u64,
    pub rw: bool,
    /// The origin's vid when this volume is a snapshot taken at start.
    pub source: Option<String>,
    pub save_on_stop: bool,
    pub snap_on_start: bool,
    pub revisions_to_keep: i64,
    /// `None` follows the pool's `ephemeral_volatile` (for plain volatile volumes).
    pub ephemeral: Option<bool>,
    /// The disk a qube without a kernel boots from (at most one per qube; with none, the root volume is).
    pub bootable: bool,
    /// Every block of the image is allocated (oVirt's `sparse=false`): it is created, grown and copied so.
    pub preallocated: bool,
    /// The name a user gave a further disk (oVirt's alias); `None` is the default, `<qube>-<volume>`, which
    /// follows the qube's name.
    pub alias: Option<String>,
}

impl Volume {
    pub fn is_plain_volatile(&self) -> bool {
        !self.save_on_stop && !self.snap_on_start
    }

    pub fn effective_ephemeral(&self, pool: Option<&Pool>) -> bool {
        match self.ephemeral {
            Some(e) => e,
            None => self.is_plain_volatile() && self.rw && pool.is_some_and(|p| p.ephemeral_volatile),
        }
    }
}

pub const GIB: u64 = 1024 * 1024 * 1024;

/// What a new further disk of a qube is asked to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisk {
    pub pool: String,
    pub size: u64,
    /// `disk<N>`'s number; `None` takes the lowest free one.
    pub index: Option<u32>,
    pub bootable: bool,
    pub preallocated: bool,
    /// The name the user gives it; `None` keeps the default alias.
    pub alias: Option<String>,
}

impl NewDisk {
    /// A sparse disk that is not booted from, with the default alias.
    pub fn thin(pool: &str, size: u64, index: Option<u32>) -> Self {
        NewDisk { pool: pool.into(), size, index, bootable: false, preallocated: false, alias: None }
    }
}

/// The longest name a user may give a disk or a network card (oVirt's limit for names).
pub const MAX_DEVICE_NAME: usize = 255;

/// Checks a name a user gives a disk or a network card (`what` says which, for the message): not empty, at
/// most [`MAX_DEVICE_NAME`] characters, no control characters (they would break the lines of listings).
pub fn check_device_name(what: &str, name: &str) -> Result<()> {
    let why = if name.trim().is_empty() {
        "it is empty"
    } else if name.chars().count() > MAX_DEVICE_NAME {
        "it is longer than 255 characters"
    } else if name.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::value(format!("Invalid {what} name {name:?}: {why}")))
}

/// Volume names a qube's class gives it, in the order `admin.vm.volume.List` prints them.
pub const VOLUME_NAMES: [&str; 4] = ["root", "private", "volatile", "kernel"];

/// How many further disks a qube may get beyond its class's volumes: `disk1`..`disk22`, so that their guest
/// devices (`vde`..`vdz`) stay single letters after the class's `vda`..`vdd` and each takes one PCI slot.
pub const MAX_EXTRA_DISKS: u32 = 22;

/// The number `N` of a further disk's volume name `disk<N>` (1..=[`MAX_EXTRA_DISKS`], no leading zero).
pub fn extra_disk_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("disk")?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=MAX_EXTRA_DISKS).contains(n))
}

/// The volume name of further disk `n`.
pub fn extra_disk_name(n: u32) -> String {
    format!("disk{n}")
}

/// Whether a qube may own a volume of this name: its class's volumes and further disks.
pub fn is_volume_name(name: &str) -> bool {
    VOLUME_NAMES.contains(&name) || extra_disk_index(name).is_some()
}

/// Where a volume is listed among its qube's: the class's volumes in their order, then further disks by number.
pub fn volume_order(name: &str) -> u32 {
    match VOLUME_NAMES.iter().position(|n| *n == name) {
        Some(i) => i as u32,
        None => VOLUME_NAMES.len() as u32 + extra_disk_index(name).unwrap_or(MAX_EXTRA_DISKS + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn further_disks_are_disk_1_to_22() {
        assert_eq!(extra_disk_index("disk1"), Some(1));
        assert_eq!(extra_disk_index("disk22"), Some(22));
        for bad in ["disk0", "disk23", "disk01", "disk", "disk1a", "Disk1", "disk-1", "private"] {
            assert_eq!(extra_disk_index(bad), None, "{bad}");
        }
        assert!(is_volume_name("kernel") && is_volume_name("disk3") && !is_volume_name("disk0"));
        let mut names = vec!["disk10", "kernel", "disk2", "root", "volatile", "private"];
        names.sort_by_key(|n| volume_order(n));
        assert_eq!(names, ["root", "private", "volatile", "kernel", "disk2", "disk10"]);
    }

    #[test]
    fn device_names_are_free_text_of_one_line() {
        for ok in ["sdk-data", "Data disk", "données", "eth0", &"x".repeat(255)] {
            assert!(check_device_name("disk", ok).is_ok(), "{ok}");
        }
        for bad in ["", "  ", "a\nb", "tab\there", "\u{7f}", &"x".repeat(256)] {
            assert!(check_device_name("disk", bad).is_err(), "{bad:?}");
        }
    }
}
