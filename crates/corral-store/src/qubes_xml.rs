//! Moving a Qubes OS host over: conversion between Corral's model and upstream qubesd's `qubes.xml`.
//!
//! Import is deliberately forgiving about content and strict about values: every item is checked the
//! way the store's loader and the Admin API would check it, and an item that fails is skipped with a
//! warning instead of failing the whole import, so one odd qube cannot block a migration. Only XML
//! that cannot be read at all (or is not a `qubes.xml`) is an error.
//!
//! What `qubes.xml` does not hold is not converted: firewall rules live in each qube's own
//! `firewall.xml` and notes in per-qube files, so imported qubes start with the default firewall and
//! no notes, and an export carries neither. Device assignments (`<devices>`) have no counterpart in
//! the model and are reported, not imported.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use corral_core::domain::{Class, Domain, DOM0_UUID};
use corral_core::label::{builtin_labels, parse_label_color, validate_label_name, Label, LAST_BUILTIN_INDEX};
use corral_core::props::{self, Access, PropType};
use corral_core::volume::{
    extra_disk_index, is_volume_name, parse_revisions_to_keep, volume_order, Driver, Pool, Volume,
};
use corral_core::{plan, text, App, HostInfo, Op};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use uuid::Uuid;

/// Real files nest six levels (`qubes/domains/domain/devices/device/option`); anything far deeper is
/// not a qubes.xml, and refusing it keeps hostile input from building an arbitrarily deep tree.
const MAX_DEPTH: usize = 32;

/// The pools every fresh store already has; their definitions there win over the imported ones because
/// the paths belong to this host, not to the one the file came from.
const BUILTIN_POOLS: [&str; 2] = ["varlibqubes", "linux-kernel"];

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML at byte {position}")]
    Syntax {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("malformed XML: the document has no root element")]
    NoRoot,
    #[error("malformed XML: element <{0}> is never closed")]
    Unclosed(String),
    #[error("malformed XML: content after the root element at byte {position}")]
    TrailingContent { position: u64 },
    #[error("unsupported structure: the root element is <{0}>, expected <qubes>")]
    UnexpectedRoot(String),
    #[error("unsupported structure: elements nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error(
        "qubes {first} and {second} both name the image {pool}:{vid}: starting one would overwrite the other's \
         data and removing one would delete it; give each its own volume in qubes.xml, then import again"
    )]
    SharedImage { pool: String, vid: String, first: String, second: String },
}

/// The result of [`import`]: ops to commit on a fresh store, and what was left out and why.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub ops: Vec<Op>,
    pub warnings: Vec<String>,
}

/// Parse a qubes.xml into the Ops that build the same model on a FRESH store (one that holds exactly
/// [`App::initial_ops`]): extra labels, extra pools, global properties, dom0's properties, features and
/// tags (as `SetProp`/`SetFeature`/`SetTag` on qid 0), and one `InsertDomain` per other qube.
///
/// Items that fail validation, unknown properties, unsupported pool drivers and qube classes are
/// skipped with a warning. Pools named like the fresh store's built-in ones keep this host's definition.
pub fn import(xml: &str) -> Result<Imported, XmlError> {
    let root = parse(xml)?;
    if root.name != "qubes" {
        return Err(XmlError::UnexpectedRoot(root.name));
    }
    let mut im = Importer::new();
    im.run(&root);
    im.refuse_shared_images()?;
    Ok(im.finish())
}

/// Render the model as a qubes.xml that upstream qubesd can load. Output is deterministic: labels by
/// index, pools in the model's order, properties in upstream's (stage, name) order, qubes by qid.
pub fn export(app: &App) -> String {
    let mut w = Writer::default();
    w.raw(0, "<?xml version='1.0' encoding='UTF-8'?>");
    w.raw(0, "<qubes>");

    w.raw(1, "<labels>");
    for l in app.labels() {
        let id = format!("label-{}", l.index);
        w.leaf(2, "label", &[("id", id.as_str()), ("color", l.color.as_str())], Some(&l.name));
    }
    w.raw(1, "</labels>");

    w.raw(1, "<pools>");
    for p in app.pools() {
        let revisions = p.revisions_to_keep.to_string();
        let mut attrs: Vec<(&str, &str)> =
            vec![("name", p.name.as_str()), ("dir_path", p.dir_path.as_str()), ("driver", p.driver.name())];
        if p.driver == Driver::File {
            attrs.push(("revisions_to_keep", revisions.as_str()));
            attrs.push(("ephemeral_volatile", text::format_bool(p.ephemeral_volatile)));
        }
        w.leaf(2, "pool", &attrs, None);
    }
    w.raw(1, "</pools>");

    let globals: Vec<(&str, &str)> = props::GLOBAL_PROPS
        .iter()
        .filter(|def| def.access == Access::ReadWrite)
        .filter_map(|def| app.global_explicit(def.name).map(|v| (def.name, v)))
        .collect();
    w.properties(1, &globals);

    let mut domains: Vec<&Domain> = app.domains().collect();
    domains.sort_by_key(|d| d.qid);
    w.raw(1, "<domains>");
    for d in domains {
        export_domain(&mut w, app, d);
    }
    w.raw(1, "</domains>");
    w.raw(0, "</qubes>");
    w.out
}

fn export_domain(w: &mut Writer, app: &App, d: &Domain) {
    w.raw(2, &format!("<domain id=\"domain-{}\" class=\"{}\">", d.qid, d.class.name()));

    let qid = d.qid.to_string();
    let uuid = d.uuid.to_string();
    let mut props: Vec<(&str, &str)> = Vec::new();
    for def in props::VM_PROPS {
        let value = match def.name {
            // Upstream's AdminVM refuses these on load: they are fixed, not stored.
            _ if d.is_admin() && props::admin_read_only(def.name) => None,
            "name" => Some(d.name.as_str()),
            "qid" => Some(qid.as_str()),
            "uuid" => Some(uuid.as_str()),
            _ if def.access == Access::ReadOnly => None,
            _ if props::vm_prop_def(d.class, def.name).is_none() => None,
            name => d.prop(name),
        };
        if let Some(v) = value {
            props.push((def.name, v));
        }
    }
    w.properties(3, &props);

    if d.features.iter().next().is_none() {
        w.raw(3, "<features/>");
    } else {
        w.raw(3, "<features>");
        for (name, value) in d.features.iter() {
            w.leaf(4, "feature", &[("name", name)], Some(value));
        }
        w.raw(3, "</features>");
    }

    // Upstream keeps the automatic guivm-/audiovm- tags in the file too.
    let tags = app.tags_of(d);
    if tags.is_empty() {
        w.raw(3, "<tags/>");
    } else {
        w.raw(3, "<tags>");
        for tag in &tags {
            w.leaf(4, "tag", &[("name", tag.as_str())], None);
        }
        w.raw(3, "</tags>");
    }

    if !d.is_admin() {
        if d.volumes.is_empty() {
            w.raw(3, "<volume-config/>");
        } else {
            w.raw(3, "<volume-config>");
            for v in &d.volumes {
                export_volume(w, v);
            }
            w.raw(3, "</volume-config>");
        }
    }
    w.raw(2, "</domain>");
}

fn export_volume(w: &mut Writer, v: &Volume) {
    let revisions = v.revisions_to_keep.to_string();
    let size = v.size.to_string();
    let mut attrs: Vec<(&str, &str)> = vec![
        ("name", v.name.as_str()),
        ("pool", v.pool.as_str()),
        ("vid", v.vid.as_str()),
        ("revisions_to_keep", revisions.as_str()),
        ("rw", text::format_bool(v.rw)),
        ("save_on_stop", text::format_bool(v.save_on_stop)),
        ("snap_on_start", text::format_bool(v.snap_on_start)),
    ];
    if let Some(e) = v.ephemeral {
        attrs.push(("ephemeral", text::format_bool(e)));
    }
    // Upstream omits a zero size and reads its absence as zero.
    if v.size != 0 {
        attrs.push(("size", size.as_str()));
    }
    if let Some(s) = &v.source {
        attrs.push(("source", s.as_str()));
    }
    // Corral's own attributes of further disks, written only when set so that other files stay as upstream's.
    if v.bootable {
        attrs.push(("bootable", text::format_bool(true)));
    }
    if v.preallocated {
        attrs.push(("preallocated", text::format_bool(true)));
    }
    if let Some(alias) = &v.alias {
        attrs.push(("alias", alias.as_str()));
    }
    w.leaf(4, "volume", &attrs, None);
}

#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn raw(&mut self, depth: usize, line: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn leaf(&mut self, depth: usize, name: &str, attrs: &[(&str, &str)], body: Option<&str>) {
        let mut line = format!("<{name}");
        for (k, v) in attrs {
            line.push_str(&format!(" {k}=\"{}\"", escape(v, true)));
        }
        match body {
            Some(t) => line.push_str(&format!(">{}</{name}>", escape(t, false))),
            None => line.push_str("/>"),
        }
        self.raw(depth, &line);
    }

    fn properties(&mut self, depth: usize, props: &[(&str, &str)]) {
        if props.is_empty() {
            self.raw(depth, "<properties/>");
            return;
        }
        self.raw(depth, "<properties>");
        for (name, value) in props {
            self.leaf(depth + 1, "property", &[("name", name)], Some(value));
        }
        self.raw(depth, "</properties>");
    }
}

/// XML escaping that also protects the whitespace a parser would otherwise normalize: a bare CR in text
/// and any tab or newline in an attribute value.
fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// A parsed element. Text is kept only as the concatenation of the element's own text nodes, which is
/// all qubes.xml uses (leaf values); whitespace between child elements is thereby harmless.
#[derive(Debug)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// `<parent><name .../>...</parent>` items, over every `parent` section (upstream uses XPath, which
    /// accepts repeated sections).
    fn items<'a>(&'a self, parent: &'a str, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children_named(parent).flat_map(move |p| p.children_named(name))
    }
}

fn parse(xml: &str) -> Result<Node, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let position = reader.buffer_position();
        let event =
            reader.read_event().map_err(|source| XmlError::Syntax { position: reader.error_position(), source })?;
        let syntax = |source: quick_xml::Error| XmlError::Syntax { position, source };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::TrailingContent { position });
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { limit: MAX_DEPTH });
                }
                stack.push(open(&e).map_err(syntax)?);
            }
            Event::Empty(e) => {
                let node = open(&e).map_err(syntax)?;
                attach(&mut stack, &mut root, node);
            }
            Event::End(_) => {
                // The reader has already matched the end tag against the open one.
                if let Some(node) = stack.pop() {
                    attach(&mut stack, &mut root, node);
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(syntax)?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(XmlError::TrailingContent { position }),
                }
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| syntax(e.into()))?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&s),
                    None => return Err(XmlError::TrailingContent { position }),
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(node) = stack.pop() {
        return Err(XmlError::Unclosed(node.name));
    }
    root.ok_or(XmlError::NoRoot)
}

fn open(e: &BytesStart<'_>) -> Result<Node, quick_xml::Error> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        attrs.push((key, a.unescape_value()?.into_owned()));
    }
    Ok(Node {
        name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

struct Importer {
    warnings: Vec<String>,
    /// Imported labels beyond the built-in ones.
    labels: Vec<Label>,
    /// A label as the file refers to it (`red`, `label-1`) → the Corral label name.
    label_refs: HashMap<String, String>,
    pools: Vec<Pool>,
    pool_names: BTreeSet<String>,
    globals: Vec<(String, String)>,
    qubes: Vec<Domain>,
    dom0: Option<Dom0Extras>,
    /// Qubes the file defines but that were skipped, to word dangling references better.
    skipped_qubes: HashSet<String>,
}

#[derive(Default)]
struct Dom0Extras {
    props: BTreeMap<String, String>,
    features: corral_core::domain::Features,
    tags: BTreeSet<String>,
}

/// A raw `<property>` list of one qube, in file order.
type RawProps = Vec<(String, String)>;

impl Importer {
    fn new() -> Importer {
        let mut label_refs = HashMap::new();
        for l in builtin_labels() {
            label_refs.insert(format!("label-{}", l.index), l.name.clone());
            label_refs.insert(l.name.clone(), l.name);
        }
        Importer {
            warnings: Vec::new(),
            labels: Vec::new(),
            label_refs,
            pools: Vec::new(),
            pool_names: BUILTIN_POOLS.iter().map(|p| p.to_string()).collect(),
            globals: Vec::new(),
            qubes: Vec::new(),
            dom0: None,
            skipped_qubes: HashSet::new(),
        }
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    fn run(&mut self, root: &Node) {
        for child in &root.children {
            if !matches!(child.name.as_str(), "labels" | "pools" | "properties" | "domains") {
                self.warn(format!("unknown element <{}> in <qubes> ignored", child.name));
            }
        }
        self.read_labels(root);
        self.read_pools(root);
        for node in root.items("domains", "domain") {
            self.read_domain(node);
        }
        self.read_globals(root);
        self.validate_references();
        self.fill_snapshot_sources();
        if !self.qubes.is_empty() {
            self.warn(
                "firewall rules are kept in each qube's firewall.xml, not in qubes.xml: imported qubes start with \
                 the default firewall (accept all)",
            );
        }
    }

    /// One image, one volume: unlike an invalid item, which is left out with a warning, two qubes naming
    /// the same image cannot be told apart here (which one owns it?), so the whole import stops.
    fn refuse_shared_images(&self) -> Result<(), XmlError> {
        // The built-in kernel pool keeps this host's definition, whatever the file says.
        let kernel_pools: BTreeSet<&str> = std::iter::once("linux-kernel")
            .chain(self.pools.iter().filter(|p| p.driver == Driver::LinuxKernel).map(|p| p.name.as_str()))
            .collect();
        let mut qubes: Vec<&Domain> = self.qubes.iter().collect();
        qubes.sort_by_key(|d| d.qid);
        let mut owners: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for d in qubes {
            for v in d.volumes.iter().filter(|v| !kernel_pools.contains(v.pool.as_str())) {
                if let Some(first) = owners.insert((&v.pool, &v.vid), &d.name) {
                    return Err(XmlError::SharedImage {
                        pool: v.pool.clone(),
                        vid: v.vid.clone(),
                        first: first.to_string(),
                        second: d.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Imported {
        let mut ops: Vec<Op> = Vec::new();
        ops.extend(self.labels.drain(..).map(Op::InsertLabel));
        ops.extend(self.pools.drain(..).map(Op::PutPool));
        self.qubes.sort_by_key(|d| d.qid);
        ops.extend(self.qubes.drain(..).map(|d| Op::InsertDomain(Box::new(d))));
        if let Some(dom0) = self.dom0.take() {
            for (name, value) in dom0.props {
                ops.push(Op::SetProp { qid: 0, name, value: Some(value) });
            }
            for (name, value) in dom0.features.iter() {
                ops.push(Op::SetFeature { qid: 0, name: name.into(), value: Some(value.into()) });
            }
            for tag in dom0.tags {
                ops.push(Op::SetTag { qid: 0, tag, present: true });
            }
        }
        // The fresh store holds the installer's explicit values; the imported host decides about those too.
        for (name, _) in App::INSTALLER_GLOBALS {
            if !self.globals.iter().any(|(n, _)| n == name) {
                ops.push(Op::SetGlobalProp { name: name.to_string(), value: None });
            }
        }
        for (name, value) in self.globals.drain(..) {
            ops.push(Op::SetGlobalProp { name, value: Some(value) });
        }
        Imported { ops, warnings: self.warnings }
    }

    fn read_labels(&mut self, root: &Node) {
        let builtins = builtin_labels();
        let mut candidates: Vec<(u32, String, String)> = Vec::new();
        for node in root.items("labels", "label") {
            let id = node.attr("id").unwrap_or_default();
            let index = id.strip_prefix("label-").and_then(text::parse_strict_u64).and_then(|i| u32::try_from(i).ok());
            let Some(index) = index.filter(|i| *i > 0) else {
                self.warn(format!("label {:?}: invalid id {id:?}; skipped", node.text));
                continue;
            };
            let name = node.text.clone();
            if validate_label_name(&name, false).is_err() {
                self.warn(format!("label {id}: invalid name {name:?}; skipped"));
                continue;
            }
            // Early upstream files wrote HTML-style colours (`#cc0000`).
            let raw = node.attr("color").unwrap_or_default();
            let color = match raw.strip_prefix('#') {
                Some(hex) => format!("0x{hex}"),
                None => raw.to_string(),
            };
            let Ok(color) = parse_label_color(color.as_bytes()) else {
                self.warn(format!("label {name}: invalid colour {raw:?}; skipped"));
                continue;
            };
            if candidates.iter().any(|(i, _, _)| *i == index) {
                self.warn(format!("label {name}: duplicate id {id}; skipped"));
                continue;
            }
            candidates.push((index, name, color));
        }

        let mut next_index = candidates.iter().map(|(i, _, _)| *i).max().unwrap_or(0).max(LAST_BUILTIN_INDEX) + 1;
        let mut names: HashSet<String> = builtins.iter().map(|l| l.name.clone()).collect();
        for (index, name, color) in candidates {
            let id = format!("label-{index}");
            if let Some(builtin) = builtins.iter().find(|l| l.index == index) {
                if builtin.name == name {
                    // Upstream itself rewrites its old grey to the current one on load.
                    if builtin.color != color && !(index == 5 && color == "0x555753") {
                        self.warn(format!("label {name}: colour {color} differs from the built-in one; built-in kept"));
                    }
                    continue;
                }
            }
            if names.contains(&name) {
                self.warn(format!("label {id}: name {name} already exists; qubes using {id} get label {name}"));
                self.label_refs.insert(id, name);
                continue;
            }
            let index = if index <= LAST_BUILTIN_INDEX {
                let new = next_index;
                next_index += 1;
                self.warn(format!("label {name}: id {id} belongs to a built-in label; imported as label-{new}"));
                new
            } else {
                index
            };
            self.label_refs.insert(id, name.clone());
            self.label_refs.insert(name.clone(), name.clone());
            names.insert(name.clone());
            self.labels.push(Label { index, name, color });
        }
    }

    fn read_pools(&mut self, root: &Node) {
        for node in root.items("pools", "pool") {
            let name = node.attr("name").unwrap_or_default().to_string();
            let driver_name = node.attr("driver").unwrap_or_default();
            if BUILTIN_POOLS.contains(&name.as_str()) {
                continue;
            }
            if !text::is_safe_name(&name) {
                self.warn(format!("pool {name:?}: invalid name; skipped"));
                continue;
            }
            if self.pool_names.contains(&name) {
                self.warn(format!("pool {name}: defined twice; the later definition skipped"));
                continue;
            }
            let Some(driver) = Driver::from_name(driver_name) else {
                self.warn(format!(
                    "pool {name}: driver {driver_name:?} is not supported (only file and linux-kernel); skipped, \
                     with the volumes in it"
                ));
                continue;
            };
            let dir_path = node.attr("dir_path").unwrap_or_default();
            if !dir_path.starts_with('/') {
                self.warn(format!("pool {name}: dir_path {dir_path:?} is not an absolute path; skipped"));
                continue;
            }
            let mut pool = Pool::new(&name, driver, dir_path);
            if driver == Driver::File {
                if let Some(raw) = node.attr("revisions_to_keep") {
                    let Ok(n) = parse_revisions_to_keep(raw) else {
                        self.warn(format!("pool {name}: invalid revisions_to_keep {raw:?}; skipped"));
                        continue;
                    };
                    pool.revisions_to_keep = n.clamp(-1, driver.max_revisions());
                    if pool.revisions_to_keep != n {
                        self.warn(format!(
                            "pool {name}: revisions_to_keep {n} exceeds what the {} driver keeps; set to {}",
                            driver.name(),
                            pool.revisions_to_keep
                        ));
                    }
                }
                if let Some(raw) = node.attr("ephemeral_volatile") {
                    let Some(b) = text::parse_bool(raw) else {
                        self.warn(format!("pool {name}: invalid ephemeral_volatile {raw:?}; skipped"));
                        continue;
                    };
                    pool.ephemeral_volatile = b;
                }
            }
            self.pool_names.insert(name);
            self.pools.push(pool);
        }
    }

    fn read_globals(&mut self, root: &Node) {
        for (name, value) in raw_props(root) {
            let Some(def) = props::global_prop_def(&name) else {
                self.warn(format!("global property {name}: unknown; skipped"));
                continue;
            };
            if def.access != Access::ReadWrite {
                self.warn(format!("global property {name}: read-only; skipped"));
                continue;
            }
            match props::sanitize(def.ty, value.as_bytes()) {
                Ok(v) => self.globals.push((name, v)),
                Err(e) => self.warn(format!("global property {name}={value:?}: {}; skipped", e.message)),
            }
        }
        let order = |n: &str| props::GLOBAL_PROPS.iter().position(|d| d.name == n);
        self.globals.sort_by_key(|(n, _)| order(n));
    }

    fn read_domain(&mut self, node: &Node) {
        let mut raw = raw_props(node);
        let prop = |raw: &RawProps, name: &str| raw.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let name = prop(&raw, "name");
        let what = name.clone().or_else(|| node.attr("id").map(str::to_string)).unwrap_or_default();
        let class_name = node.attr("class").unwrap_or_default();
        let Some(class) = Class::from_name(class_name) else {
            self.warn(format!("qube {what}: class {class_name:?} is not supported; skipped"));
            self.skipped_qubes.extend(name);
            return;
        };

        if class == Class::AdminVM {
            let ok = self.dom0.is_none()
                && name.as_deref().is_none_or(|n| n == "dom0")
                && prop(&raw, "qid").is_none_or(|q| q.trim() == "0");
            if !ok {
                self.warn(format!("qube {what}: only one AdminVM, dom0 with qid 0, is supported; skipped"));
                return;
            }
            let mut d = Domain::new(0, "dom0", DOM0_UUID, Class::AdminVM);
            self.read_props(&mut d, raw);
            self.read_extras(&mut d, node);
            if node.children_named("volume-config").any(|v| !v.children.is_empty()) {
                self.warn("qube dom0: volume-config ignored (dom0 has no volumes)");
            }
            self.dom0 = Some(Dom0Extras { props: d.props, features: d.features, tags: d.tags });
            return;
        }

        let Some(name) = name.filter(|n| text::validate_vm_name(n).is_ok()) else {
            self.warn(format!("qube {what}: missing or invalid name; skipped"));
            return;
        };
        let qid = prop(&raw, "qid").and_then(|q| text::parse_python_int(&q)).and_then(|q| u32::try_from(q).ok());
        let Some(qid) = qid.filter(|q| (1..=corral_core::app::MAX_QID).contains(q)) else {
            self.warn(format!("qube {name}: missing or invalid qid; skipped"));
            self.skipped_qubes.insert(name);
            return;
        };
        let uuid = match prop(&raw, "uuid") {
            None => {
                self.warn(format!("qube {name}: no uuid in the file; a new one was generated"));
                Uuid::new_v4()
            }
            Some(u) => match Uuid::parse_str(u.trim()).ok().filter(|u| *u != DOM0_UUID) {
                Some(u) => u,
                None => {
                    self.warn(format!("qube {name}: invalid uuid {u:?}; skipped"));
                    self.skipped_qubes.insert(name);
                    return;
                }
            },
        };
        let clash = name == "dom0" || self.qubes.iter().any(|q| q.name == name || q.qid == qid || q.uuid == uuid);
        if clash {
            self.warn(format!("qube {name}: name, qid {qid} or uuid {uuid} already used by another qube; skipped"));
            return;
        }

        // Upstream's pre-virt_mode property, migrated the way upstream does when loading.
        if let Some(pos) = raw.iter().position(|(k, _)| k == "hvm") {
            let (_, hvm) = raw.remove(pos);
            if prop(&raw, "virt_mode").is_none() {
                let mode = if text::parse_bool(&hvm).unwrap_or(false) { "hvm" } else { "pv" };
                raw.push(("virt_mode".into(), mode.into()));
            }
        }

        let mut d = Domain::new(qid, &name, uuid, class);
        self.read_props(&mut d, raw);
        self.read_extras(&mut d, node);
        d.volumes = self.read_volumes(&name, node);
        self.qubes.push(d);
    }

    /// Type-level checks only; checks that consult other qubes run once everything is read.
    fn read_props(&mut self, d: &mut Domain, raw: RawProps) {
        for (name, value) in raw {
            if matches!(name.as_str(), "name" | "qid" | "uuid") {
                continue;
            }
            let Some(def) = props::vm_prop_def(d.class, &name) else {
                self.warn(format!("qube {}: unknown property {name}; skipped", d.name));
                continue;
            };
            if def.access == Access::ReadOnly || (d.is_admin() && props::admin_read_only(&name)) {
                self.warn(format!("qube {}: property {name} is read-only; skipped", d.name));
                continue;
            }
            let value = match props::sanitize(def.ty, value.as_bytes()) {
                Ok(v) => v,
                Err(e) => {
                    self.warn(format!("qube {}: property {name}={value:?}: {}; skipped", d.name, e.message));
                    continue;
                }
            };
            let value = if def.ty == PropType::Label {
                match self.label_refs.get(&value) {
                    Some(l) => l.clone(),
                    None => {
                        self.warn(format!("qube {}: label {value:?} does not exist; skipped", d.name));
                        continue;
                    }
                }
            } else {
                value
            };
            d.props.insert(name, value);
        }
    }

    fn read_extras(&mut self, d: &mut Domain, node: &Node) {
        for f in node.items("features", "feature") {
            let name = f.attr("name").unwrap_or_default();
            let name = corral_core::domain::RENAMED_FEATURES.iter().find(|(old, _)| *old == name).map_or(name, |r| r.1);
            let valid = plan::validate_feature_name(name).is_ok() && f.text.bytes().all(|b| (0x20..0x7f).contains(&b));
            if valid {
                d.features.set(name, &f.text);
            } else {
                self.warn(format!("qube {}: invalid feature {name:?}={:?}; skipped", d.name, f.text));
            }
        }
        for t in node.items("tags", "tag") {
            let tag = t.attr("name").unwrap_or_default();
            if text::validate_tag(tag).is_err() {
                self.warn(format!("qube {}: invalid tag {tag:?}; skipped", d.name));
            } else if !tag.starts_with("guivm-") && !tag.starts_with("audiovm-") {
                // Those two kinds are derived from the guivm/audiovm properties here, not stored.
                d.tags.insert(tag.to_string());
            }
        }
        for devices in node.children_named("devices") {
            if !devices.children.is_empty() {
                let class = devices.attr("class").unwrap_or_default();
                self.warn(format!("qube {}: {class} device assignments are not imported", d.name));
            }
        }
        for child in &node.children {
            if !matches!(child.name.as_str(), "properties" | "features" | "tags" | "devices" | "volume-config") {
                self.warn(format!("qube {}: unknown element <{}> ignored", d.name, child.name));
            }
        }
    }

    fn read_volumes(&mut self, qube: &str, node: &Node) -> Vec<Volume> {
        let mut volumes: Vec<Volume> = Vec::new();
        for v in node.items("volume-config", "volume") {
            match self.read_volume(v) {
                Ok(vol) if volumes.iter().any(|o| o.name == vol.name) => {
                    self.warn(format!("qube {qube}: volume {} defined twice; the later one skipped", vol.name));
                }
                Ok(vol) => volumes.push(vol),
                Err(why) => {
                    let name = v.attr("name").unwrap_or_default();
                    self.warn(format!("qube {qube}: volume {name:?}: {why}; skipped"));
                }
            }
        }
        volumes.sort_by_key(|v| volume_order(&v.name));
        volumes
    }

    fn read_volume(&self, v: &Node) -> Result<Volume, String> {
        let name = v.attr("name").unwrap_or_default();
        if !is_volume_name(name) {
            return Err("not a volume name qubes have (root, private, volatile, kernel, disk1..disk22)".into());
        }
        let pool = v.attr("pool").ok_or("no pool")?;
        if !self.pool_names.contains(pool) {
            return Err(format!("pool {pool:?} was not imported"));
        }
        let vid = v.attr("vid").ok_or("no vid")?;
        if vid.starts_with('/') || vid.split('/').any(|c| c == "..") {
            return Err(format!("invalid vid {vid:?}"));
        }
        let flag = |key: &str| match v.attr(key) {
            None => Ok(None),
            Some(raw) => text::parse_bool(raw).map(Some).ok_or_else(|| format!("invalid {key} {raw:?}")),
        };
        let size = match v.attr("size") {
            None => 0,
            Some(raw) => text::parse_strict_u64(raw).ok_or_else(|| format!("invalid size {raw:?}"))?,
        };
        let revisions_to_keep = match v.attr("revisions_to_keep") {
            None => 0,
            Some(raw) => parse_revisions_to_keep(raw).map_err(|_| format!("invalid revisions_to_keep {raw:?}"))?,
        };
        let alias = match v.attr("alias") {
            None => None,
            Some(alias) if extra_disk_index(name).is_none() => {
                return Err(format!("alias {alias:?} on a volume its qube's class gives it"))
            }
            Some(alias) => {
                corral_core::volume::check_device_name("disk", alias).map_err(|e| e.message)?;
                Some(alias.to_string())
            }
        };
        Ok(Volume {
            name: name.to_string(),
            pool: pool.to_string(),
            vid: vid.to_string(),
            size,
            rw: flag("rw")?.unwrap_or(false),
            source: v.attr("source").filter(|s| !s.is_empty()).map(str::to_string),
            save_on_stop: flag("save_on_stop")?.unwrap_or(false),
            snap_on_start: flag("snap_on_start")?.unwrap_or(false),
            revisions_to_keep,
            ephemeral: flag("ephemeral")?,
            bootable: flag("bootable")?.unwrap_or(false),
            preallocated: flag("preallocated")?.unwrap_or(false),
            alias,
        })
    }

    /// The model the ops would build, for the checks that consult other qubes and global properties.
    fn scratch(&self) -> App {
        let mut app = App::empty(HostInfo { memory_mib: 0, cpus: 0 });
        for op in App::initial_ops("/var/lib/qubes", "/var/lib/qubes/vm-kernels") {
            app.apply(op);
        }
        for l in &self.labels {
            app.apply(Op::InsertLabel(l.clone()));
        }
        for p in &self.pools {
            app.apply(Op::PutPool(p.clone()));
        }
        for d in &self.qubes {
            app.apply(Op::InsertDomain(Box::new(d.clone())));
        }
        if let Some(dom0) = &self.dom0 {
            for (name, value) in &dom0.props {
                app.apply(Op::SetProp { qid: 0, name: name.clone(), value: Some(value.clone()) });
            }
        }
        for (name, _) in App::INSTALLER_GLOBALS {
            app.apply(Op::SetGlobalProp { name: name.to_string(), value: None });
        }
        for (name, value) in &self.globals {
            app.apply(Op::SetGlobalProp { name: name.clone(), value: Some(value.clone()) });
        }
        app
    }

    /// Runs every property's own check (the one a client's Set goes through) against the model as it
    /// would be after the import, so file order does not matter. Dropping a value can invalidate
    /// another (a qube without its template is dropped, and so are references to it), hence the loop;
    /// each round removes something or ends it.
    fn validate_references(&mut self) {
        loop {
            let app = self.scratch();
            let mut dropped = false;

            let mut globals = std::mem::take(&mut self.globals);
            globals.retain_mut(|(name, value)| {
                let Some(check) = props::global_prop_def(name).and_then(|def| def.check) else { return true };
                match check(&app, value) {
                    Ok(v) => {
                        *value = v;
                        true
                    }
                    Err(e) => {
                        self.warnings.push(format!("global property {name}={value:?}: {}; skipped", e.message));
                        dropped = true;
                        false
                    }
                }
            });
            self.globals = globals;

            let mut qubes = std::mem::take(&mut self.qubes);
            for d in &mut qubes {
                dropped |= self.check_props(&app, &d.name, d.class, &mut d.props);
            }
            if let Some(mut dom0) = self.dom0.take() {
                dropped |= self.check_props(&app, "dom0", Class::AdminVM, &mut dom0.props);
                self.dom0 = Some(dom0);
            }
            qubes.retain(|d| {
                if d.class.has_template() && d.template_name().is_none() {
                    self.warnings.push(format!("qube {}: no valid template; skipped", d.name));
                    self.skipped_qubes.insert(d.name.clone());
                    dropped = true;
                    return false;
                }
                true
            });
            self.qubes = qubes;

            if !dropped {
                break;
            }
        }
    }

    fn check_props(&mut self, app: &App, qube: &str, class: Class, values: &mut BTreeMap<String, String>) -> bool {
        let Some(d) = app.domain(qube) else { return false };
        let mut dropped = false;
        values.retain(|name, value| {
            let Some(check) = props::vm_prop_def(class, name).and_then(|def| def.check) else { return true };
            match check(app, d, value) {
                Ok(v) => {
                    *value = v;
                    true
                }
                Err(e) => {
                    let hint =
                        if self.skipped_qubes.contains(value.as_str()) { " (that qube was skipped)" } else { "" };
                    self.warnings.push(format!("qube {qube}: property {name}={value:?}: {}{hint}; skipped", e.message));
                    dropped = true;
                    false
                }
            }
        });
        dropped
    }

    /// A snapshot volume names its origin's vid; when the file leaves it out, upstream finds it by
    /// following the template chain, and so does this.
    fn fill_snapshot_sources(&mut self) {
        let by_name: HashMap<String, Domain> = self.qubes.iter().map(|d| (d.name.clone(), d.clone())).collect();
        for d in &mut self.qubes {
            let template = d.template_name().map(str::to_string);
            for v in &mut d.volumes {
                if v.snap_on_start && v.source.is_none() {
                    v.source = origin_vid(&by_name, template.as_deref(), &v.name);
                    if v.source.is_none() {
                        self.warnings.push(format!("qube {}: volume {}: snapshot origin not found", d.name, v.name));
                    }
                }
            }
        }
    }
}

fn origin_vid<'a>(qubes: &'a HashMap<String, Domain>, mut template: Option<&'a str>, volume: &str) -> Option<String> {
    // Template chains are at most TemplateVM → AppVM → DispVM; the bound only stops a cycle.
    for _ in 0..8 {
        let t = qubes.get(template?)?;
        let v = t.volume(volume)?;
        if let Some(s) = &v.source {
            return Some(s.clone());
        }
        if !v.snap_on_start {
            return Some(v.vid.clone());
        }
        template = t.template_name();
    }
    None
}

/// `<properties><property name=...>` of an element; a `ref` attribute (older files' way to name a
/// label) takes precedence over the text, as upstream reads it.
fn raw_props(node: &Node) -> RawProps {
    node.items("properties", "property")
        .filter_map(|p| {
            let name = p.attr("name")?;
            let value = p.attr("ref").filter(|r| !r.is_empty()).unwrap_or(&p.text);
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}
