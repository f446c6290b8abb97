//! A qube: identity, class, explicitly set properties, features, tags, firewall, notes and volumes.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::firewall::Rule;
use crate::volume::Volume;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    AdminVM,
    AppVM,
    TemplateVM,
    StandaloneVM,
    DispVM,
    /// A qube of another host, reached through a local relay qube: no volumes, nothing to run here.
    RemoteVM,
}

impl Class {
    pub const ALL: [Class; 6] =
        [Class::AppVM, Class::TemplateVM, Class::StandaloneVM, Class::AdminVM, Class::DispVM, Class::RemoteVM];

    pub fn name(self) -> &'static str {
        match self {
            Class::AdminVM => "AdminVM",
            Class::AppVM => "AppVM",
            Class::TemplateVM => "TemplateVM",
            Class::StandaloneVM => "StandaloneVM",
            Class::DispVM => "DispVM",
            Class::RemoteVM => "RemoteVM",
        }
    }

    pub fn from_name(name: &str) -> Option<Class> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// AppVMs and DispVMs run on another qube's root volume.
    pub fn has_template(self) -> bool {
        matches!(self, Class::AppVM | Class::DispVM)
    }

    /// Qubes this host runs, with volumes and a libvirt domain: neither dom0 nor a RemoteVM.
    pub fn runs_here(self) -> bool {
        !matches!(self, Class::AdminVM | Class::RemoteVM)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Features keep insertion order, as `admin.vm.feature.List` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(Vec<(String, String)>);

impl Features {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Returns the previous value. An existing feature keeps its position.
    pub fn set(&mut self, name: &str, value: &str) -> Option<String> {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => Some(std::mem::replace(v, value.to_string())),
            None => {
                self.0.push((name.to_string(), value.to_string()));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let pos = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(pos).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A feature counts as enabled when present and non-empty.
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub qid: u32,
    pub name: String,
    pub uuid: Uuid,
    pub class: Class,
    /// Explicitly set properties in their wire form; absent means "default".
    pub props: BTreeMap<String, String>,
    pub features: Features,
    /// Tags set by callers and by creation; the automatic `guivm-*`/`audiovm-*` ones are derived.
    pub tags: BTreeSet<String>,
    pub firewall: Vec<Rule>,
    pub notes: String,
    pub volumes: Vec<Volume>,
    /// Descriptions callers gave to revisions of its volumes, by (volume, revision id). A revision the pool
    /// has dropped may keep its entry until the volume's next snapshot prunes it.
    pub revision_descriptions: BTreeMap<(String, String), String>,
}

impl Domain {
    pub fn new(qid: u32, name: &str, uuid: Uuid, class: Class) -> Self {
        Domain {
            qid,
            name: name.to_string(),
            uuid,
            class,
            props: BTreeMap::new(),
            features: Features::default(),
            tags: BTreeSet::new(),
            firewall: crate::firewall::default_rules(),
            notes: String::new(),
            volumes: Vec::new(),
            revision_descriptions: BTreeMap::new(),
        }
    }

    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }

    pub fn template_name(&self) -> Option<&str> {
        self.prop("template").filter(|t| !t.is_empty())
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The volume the qube boots from when it boots from a disk (no kernel): its chosen boot disk, else its root.
    pub fn boot_volume(&self) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.bootable).or_else(|| self.volume("root"))
    }

    pub fn volume_mut(&mut self, name: &str) -> Option<&mut Volume> {
        self.volumes.iter_mut().find(|v| v.name == name)
    }

    pub fn is_admin(&self) -> bool {
        self.class == Class::AdminVM
    }

    pub fn is_remote(&self) -> bool {
        self.class == Class::RemoteVM
    }

    /// The libvirt network the qube's card joins directly, without a netvm ([`NETWORK_FEATURE`]).
    pub fn libvirt_network(&self) -> Option<&str> {
        self.features.get(NETWORK_FEATURE).filter(|n| !n.is_empty())
    }

    /// The name of the qube's network card: the one a user gave it ([`NIC_NAME_FEATURE`]), else [`NIC_NAME`].
    pub fn nic_name(&self) -> &str {
        self.features.get(NIC_NAME_FEATURE).filter(|n| !n.is_empty()).unwrap_or(NIC_NAME)
    }

    /// The name of volume `v`'s disk: the alias a user gave it, else `<qube>-<volume>`.
    pub fn disk_alias(&self, v: &Volume) -> String {
        v.alias.clone().unwrap_or_else(|| format!("{}-{}", self.name, v.name))
    }
}

/// The qube's feature holding the name a user gave its network card (oVirt names cards freely); without it
/// the card is [`NIC_NAME`]. It goes with the card.
pub const NIC_NAME_FEATURE: &str = "corral.nic-name";

/// The name of a qube's card nobody named.
pub const NIC_NAME: &str = "nic1";

/// The qube's feature naming the libvirt network its one card is on, without any netvm (a hypervisor
/// network such as an isolated lab network, or libvirt's `default` itself). A qube on one has no netvm:
/// its `netvm` defaults to none and cannot be set. Like the daemon's other features, the name is outside
/// upstream's feature names so no Qubes extension reads it.
pub const NETWORK_FEATURE: &str = "corral.network";

/// The qube's feature naming the ISO image (a file some `file` pool offers) in its cdrom drive.
pub const CDROM_FEATURE: &str = "corral.cdrom";

/// The names the daemon's features had when the HTTP door's name was in them (older stores, and qubes.xml
/// files an older Corral exported), and their names now.
pub const RENAMED_FEATURES: [(&str, &str); 3] =
    [("rest.cdrom", CDROM_FEATURE), ("rest.network", NETWORK_FEATURE), ("rest.nic-name", NIC_NAME_FEATURE)];

/// The libvirt network the card of a qube behind a netvm joins.
pub const NETVM_NETWORK: &str = "default";

pub const DOM0_UUID: Uuid = Uuid::nil();

/// The administrative qube's name: the host itself, and the destination of global calls.
pub const DOM0: &str = "dom0";
