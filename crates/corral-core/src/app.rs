//! The whole model of one host: qubes, labels, pools and global properties, plus the `Op`s that change it.
//!
//! Every change is first planned as a list of `Op`s (validated against the current model), then written
//! to the store in one transaction, and only then applied here. Applying never fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{Class, Domain, DOM0_UUID};
use crate::firewall::Rule;
use crate::label::{builtin_labels, Label};
use crate::props::{self, Access};
use crate::volume::{Driver, Pool, Volume};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    pub memory_mib: u64,
    pub cpus: u32,
}

/// One durable change. The store writes exactly these; the model applies exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    InsertDomain(Box<Domain>),
    DeleteDomain { qid: u32 },
    SetProp { qid: u32, name: String, value: Option<String> },
    SetFeature { qid: u32, name: String, value: Option<String> },
    SetTag { qid: u32, tag: String, present: bool },
    SetFirewall { qid: u32, rules: Vec<Rule> },
    SetNotes { qid: u32, text: String },
    SetVolume { qid: u32, volume: Volume },
    DeleteVolume { qid: u32, name: String },
    SetRevisionDescription { qid: u32, volume: String, revision: String, description: Option<String> },
    SetGlobalProp { name: String, value: Option<String> },
    InsertLabel(Label),
    DeleteLabel { index: u32 },
    PutPool(Pool),
    DeletePool { name: String },
    PutUser(crate::user::User),
    DeleteUser { name: String },
}

/// Cloning is cheap (qubes are shared until one of the copies changes), so readers can keep a consistent
/// picture of the model without holding up writers.
#[derive(Debug, Clone)]
pub struct App {
    // Names are shared between the indexes, so that copying the model copies no string.
    domains: BTreeMap<Arc<str>, Arc<Domain>>,
    by_uuid: HashMap<Uuid, Arc<str>>,
    by_qid: HashMap<u32, Arc<str>>,
    labels: BTreeMap<u32, Label>,
    pools: Vec<Pool>,
    props: BTreeMap<String, String>,
    users: BTreeMap<String, crate::user::User>,
    quarantined: Quarantined,
    pub host: HostInfo,
}

/// Keys held by qube rows the store keeps but could not load. They stay in the database for the operator
/// to repair, so a new qube must not take them (the database would refuse the write).
#[derive(Debug, Clone, Default)]
struct Quarantined {
    qids: std::collections::BTreeSet<i64>,
    names: std::collections::BTreeSet<String>,
    uuids: std::collections::BTreeSet<String>,
    label_indexes: std::collections::BTreeSet<i64>,
    label_names: std::collections::BTreeSet<String>,
}

pub const MAX_QID: u32 = 10000;

impl App {
    pub fn empty(host: HostInfo) -> Self {
        App {
            domains: BTreeMap::new(),
            by_uuid: HashMap::new(),
            by_qid: HashMap::new(),
            labels: BTreeMap::new(),
            pools: Vec::new(),
            props: BTreeMap::new(),
            users: BTreeMap::new(),
            quarantined: Quarantined::default(),
            host,
        }
    }

    /// The global properties Qubes' installer sets rather than leaving at their defaults.
    pub const INSTALLER_GLOBALS: [(&'static str, &'static str); 1] = [("default_pool_kernel", "linux-kernel")];

    /// What a fresh install has: dom0, the standard labels, the built-in pools and the installer's
    /// explicit global properties. Nothing else.
    pub fn initial_ops(state_dir: &str, kernels_dir: &str) -> Vec<Op> {
        let mut dom0 = Domain::new(0, "dom0", DOM0_UUID, Class::AdminVM);
        dom0.firewall.clear();
        dom0.props.insert("label".into(), "black".into());
        let mut ops = vec![Op::InsertDomain(Box::new(dom0))];
        ops.extend(builtin_labels().into_iter().map(Op::InsertLabel));
        ops.push(Op::PutPool(Pool::new("varlibqubes", Driver::File, state_dir)));
        ops.push(Op::PutPool(Pool::new("linux-kernel", Driver::LinuxKernel, kernels_dir)));
        ops.extend(
            Self::INSTALLER_GLOBALS
                .iter()
                .map(|(name, value)| Op::SetGlobalProp { name: name.to_string(), value: Some(value.to_string()) }),
        );
        ops
    }

    pub fn apply(&mut self, op: Op) {
        match op {
            Op::InsertDomain(d) => {
                let name: Arc<str> = Arc::from(d.name.as_str());
                self.by_uuid.insert(d.uuid, name.clone());
                self.by_qid.insert(d.qid, name.clone());
                self.domains.insert(name, Arc::new(*d));
            }
            Op::DeleteDomain { qid } => {
                if let Some(name) = self.by_qid.remove(&qid) {
                    if let Some(d) = self.domains.remove(&name) {
                        self.by_uuid.remove(&d.uuid);
                    }
                }
            }
            Op::SetProp { qid, name, value } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    match value {
                        Some(v) => d.props.insert(name, v),
                        None => d.props.remove(&name),
                    };
                }
            }
            Op::SetFeature { qid, name, value } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    match value {
                        Some(v) => d.features.set(&name, &v),
                        None => d.features.remove(&name),
                    };
                }
            }
            Op::SetTag { qid, tag, present } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    if present {
                        d.tags.insert(tag);
                    } else {
                        d.tags.remove(&tag);
                    }
                }
            }
            Op::SetFirewall { qid, rules } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    d.firewall = rules;
                }
            }
            Op::SetNotes { qid, text } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    d.notes = text;
                }
            }
            Op::SetVolume { qid, volume } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    match d.volume_mut(&volume.name) {
                        Some(v) => *v = volume,
                        None => {
                            d.volumes.push(volume);
                            d.volumes.sort_by_key(|v| crate::volume::volume_order(&v.name));
                        }
                    }
                }
            }
            // Only a qube's further disks are dropped on their own; the class's volumes go with the qube.
            Op::DeleteVolume { qid, name } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    d.volumes.retain(|v| v.name != name);
                }
            }
            Op::SetRevisionDescription { qid, volume, revision, description } => {
                if let Some(d) = self.by_qid_mut(qid) {
                    match description {
                        Some(text) => d.revision_descriptions.insert((volume, revision), text),
                        None => d.revision_descriptions.remove(&(volume, revision)),
                    };
                }
            }
            Op::SetGlobalProp { name, value } => {
                match value {
                    Some(v) => self.props.insert(name, v),
                    None => self.props.remove(&name),
                };
            }
            Op::InsertLabel(l) => {
                self.labels.insert(l.index, l);
            }
            Op::DeleteLabel { index } => {
                self.labels.remove(&index);
            }
            Op::PutPool(p) => match self.pools.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p,
                None => self.pools.push(p),
            },
            Op::DeletePool { name } => self.pools.retain(|p| p.name != name),
            Op::PutUser(u) => {
                self.users.insert(u.name.clone(), u);
            }
            Op::DeleteUser { name } => {
                self.users.remove(&name);
            }
        }
    }

    fn by_qid_mut(&mut self, qid: u32) -> Option<&mut Domain> {
        let name = self.by_qid.get(&qid)?;
        self.domains.get_mut(&**name).map(Arc::make_mut)
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.get(name).map(AsRef::as_ref)
    }

    pub fn domain_by_uuid(&self, uuid: &Uuid) -> Option<&Domain> {
        self.by_uuid.get(uuid).and_then(|n| self.domain(n))
    }

    pub fn domain_by_qid(&self, qid: u32) -> Option<&Domain> {
        self.by_qid.get(&qid).and_then(|n| self.domain(n))
    }

    /// All qubes in upstream's order: dom0 first, then the others by name.
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        let all = self.domains.values().map(AsRef::as_ref);
        all.clone().filter(|d| d.is_admin()).chain(all.filter(|d| !d.is_admin()))
    }

    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    pub fn labels(&self) -> impl Iterator<Item = &Label> {
        self.labels.values()
    }

    /// The `label` property setter's lookup: a name, then `label-N`/digits as an index.
    pub fn label(&self, token: &str) -> Option<&Label> {
        let index = || token.strip_prefix("label-")?.parse::<u32>().ok();
        self.get_label(token).or_else(|| self.labels.get(&index()?))
    }

    /// Upstream's `get_label`, which the `admin.label.*` calls and Create use: a name, then digits as an
    /// index (not `label-N`).
    pub fn get_label(&self, token: &str) -> Option<&Label> {
        if let Some(l) = self.labels.values().find(|l| l.name == token) {
            return Some(l);
        }
        token.parse::<u32>().ok().and_then(|i| self.labels.get(&i))
    }

    pub fn user(&self, name: &str) -> Option<&crate::user::User> {
        self.users.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &crate::user::User> {
        self.users.values()
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn global_explicit(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }

    /// A global property's effective value: the explicit one, else its default.
    pub fn global_prop(&self, name: &str) -> Option<String> {
        if let Some(v) = self.props.get(name) {
            return Some(v.clone());
        }
        props::global_prop_def(name).and_then(|def| (def.default)(self))
    }

    /// A qube property's effective value: explicit, else the default rule (which may follow other
    /// qubes and global properties). `None` means unset with no default.
    pub fn vm_prop(&self, d: &Domain, name: &str) -> Option<String> {
        let def = props::vm_prop_def(d.class, name)?;
        if def.access != Access::ReadOnly || d.is_admin() {
            if let Some(v) = d.props.get(name) {
                return Some(v.clone());
            }
        }
        if d.is_admin() {
            if let Some(f) = props::admin_default(name) {
                return f(self, d);
            }
        }
        (def.default)(self, d)
    }

    pub fn template_of(&self, d: &Domain) -> Option<&Domain> {
        d.template_name().and_then(|t| self.domain(t))
    }

    /// The libvirt network the qube's one card is on: the one it names itself, else `default` when it is
    /// behind a netvm; `None` when it has no card.
    pub fn nic_network(&self, d: &Domain) -> Option<String> {
        if let Some(network) = d.libvirt_network() {
            return Some(network.to_string());
        }
        let netvm = self.vm_prop(d, "netvm").filter(|n| !n.is_empty());
        netvm.map(|_| crate::domain::NETVM_NETWORK.to_string())
    }

    /// The qubes a qube's traffic passes through, nearest first (stops at a loop).
    pub fn netvm_chain(&self, d: &Domain) -> Vec<String> {
        let mut chain: Vec<String> = Vec::new();
        let mut cur = self.vm_prop(d, "netvm");
        while let Some(name) = cur.filter(|n| !n.is_empty()) {
            if chain.contains(&name) || name == d.name {
                break;
            }
            let next = self.domain(&name).and_then(|n| self.vm_prop(n, "netvm"));
            chain.push(name);
            cur = next;
        }
        chain
    }

    /// Feature lookup in the qube, then up its template chain.
    pub fn feature_with_template<'a>(&'a self, d: &'a Domain, name: &str) -> Option<&'a str> {
        let mut cur = Some(d);
        let mut hops = 0;
        while let Some(vm) = cur {
            if let Some(v) = vm.features.get(name) {
                return Some(v);
            }
            hops += 1;
            cur = if hops > 8 { None } else { self.template_of(vm) };
        }
        None
    }

    /// Feature lookup in the qube, then along its netvm chain.
    pub fn feature_with_netvm<'a>(&'a self, d: &'a Domain, name: &str) -> Option<&'a str> {
        if let Some(v) = d.features.get(name) {
            return Some(v);
        }
        self.netvm_chain(d).iter().filter_map(|n| self.domain(n)).find_map(|vm| vm.features.get(name))
    }

    /// Tags including the automatic ones derived from properties.
    pub fn tags_of(&self, d: &Domain) -> Vec<String> {
        let mut tags: Vec<String> = d.tags.iter().cloned().collect();
        for (prop, prefix) in [("guivm", "guivm-"), ("audiovm", "audiovm-"), ("relayvm", "relayvm-")] {
            if let Some(v) = self.vm_prop(d, prop).filter(|v| !v.is_empty()) {
                tags.push(format!("{prefix}{v}"));
            }
        }
        tags.sort();
        tags.dedup();
        tags
    }

    /// Lowest free qid ≥ 1, passing over those of quarantined rows.
    pub fn free_qid(&self) -> Option<u32> {
        (1..=MAX_QID).find(|q| !self.by_qid.contains_key(q) && !self.quarantined.qids.contains(&i64::from(*q)))
    }

    /// Keeps a quarantined qube row's keys (as stored, whatever they are) out of new qubes' reach.
    pub fn quarantine_keys(&mut self, qid: Option<i64>, name: Option<&str>, uuid: Option<&str>) {
        self.quarantined.qids.extend(qid);
        self.quarantined.names.extend(name.map(str::to_string));
        self.quarantined.uuids.extend(uuid.map(|u| u.to_ascii_lowercase()));
    }

    /// The same for a quarantined label row.
    pub fn quarantine_label_keys(&mut self, index: Option<i64>, name: Option<&str>) {
        self.quarantined.label_indexes.extend(index);
        self.quarantined.label_names.extend(name.map(str::to_string));
    }

    /// The highest label index a quarantined row holds, which new labels must pass.
    pub fn quarantined_label_index(&self) -> Option<i64> {
        self.quarantined.label_indexes.last().copied()
    }

    pub fn is_quarantined_label_index(&self, index: u32) -> bool {
        self.quarantined.label_indexes.contains(&i64::from(index))
    }

    pub fn is_quarantined_label_name(&self, name: &str) -> bool {
        self.quarantined.label_names.contains(name)
    }

    /// Whether the store holds qube rows beside dom0's that were quarantined at load.
    pub fn has_quarantined_qubes(&self) -> bool {
        self.quarantined.qids.iter().any(|q| *q != 0) || self.quarantined.names.iter().any(|n| n != "dom0")
    }

    /// A qube row with this name is in the store but was quarantined at load.
    pub fn is_quarantined_name(&self, name: &str) -> bool {
        self.quarantined.names.contains(name)
    }

    pub fn is_quarantined_uuid(&self, uuid: &Uuid) -> bool {
        self.quarantined.uuids.contains(&uuid.to_string())
    }

    /// Qubes whose properties reference `name` in a way that blocks its removal, with the property.
    pub fn references_to(&self, name: &str) -> Vec<(String, &'static str)> {
        let mut refs = Vec::new();
        for d in self.domains() {
            if d.name == name {
                continue;
            }
            for def in props::VM_PROPS.iter().filter(|p| p.ty == props::PropType::Vm) {
                if d.props.get(def.name).map(String::as_str) == Some(name) {
                    refs.push((d.name.clone(), def.name));
                }
            }
        }
        refs
    }
}
