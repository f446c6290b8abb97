//! Reading the model back. Each row is validated as if a client had sent it; a row that fails is
//! skipped and reported, so one damaged qube cannot keep the daemon from starting.

use std::collections::BTreeMap;

use corral_core::domain::{Class, Domain};
use corral_core::label::Label;
use corral_core::props::{self, Access};
use corral_core::volume::{is_volume_name, volume_order, Driver, Pool, Volume};
use corral_core::{firewall, plan, text, App, HostInfo, Op};
use rusqlite::Connection;
use uuid::Uuid;

use crate::Result;

/// A row that was skipped at load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    pub table: &'static str,
    pub key: String,
    pub reason: String,
}

struct Loader {
    warnings: Vec<LoadWarning>,
}

impl Loader {
    fn skip(&mut self, table: &'static str, key: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(LoadWarning { table, key: key.into(), reason: reason.into() });
    }
}

pub fn load(conn: &Connection, host: HostInfo) -> Result<(App, Vec<LoadWarning>)> {
    let mut app = App::empty(host);
    let mut l = Loader { warnings: Vec::new() };

    let mut stmt = conn.prepare("SELECT idx, name, color FROM labels ORDER BY idx")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (idx, name, color) = row?;
        let valid = u32::try_from(idx).ok().filter(|i| *i > 0).zip(
            corral_core::label::parse_label_color(color.as_bytes())
                .ok()
                .filter(|_| corral_core::label::validate_label_name(&name, false).is_ok()),
        );
        match valid {
            Some((index, color)) => app.apply(Op::InsertLabel(Label { index, name, color })),
            None => l.skip("labels", name, "invalid label"),
        }
    }

    let mut stmt =
        conn.prepare("SELECT name, driver, dir_path, revisions_to_keep, ephemeral_volatile FROM pools ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (name, driver, dir_path, revisions_to_keep, ephemeral_volatile) = row?;
        match Driver::from_name(&driver) {
            Some(driver) if text::is_safe_name(&name) && dir_path.starts_with('/') => {
                let mut pool = Pool::new(&name, driver, &dir_path);
                pool.revisions_to_keep = revisions_to_keep.clamp(-1, driver.max_revisions());
                pool.ephemeral_volatile = ephemeral_volatile;
                app.apply(Op::PutPool(pool));
            }
            _ => l.skip("pools", name, format!("invalid pool (driver {driver})")),
        }
    }

    let mut stmt = conn.prepare("SELECT name, value FROM global_properties")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (name, value) = row?;
        match props::global_prop_def(&name) {
            Some(def) if def.access == Access::ReadWrite && props::sanitize(def.ty, value.as_bytes()).is_ok() => {
                app.apply(Op::SetGlobalProp { name, value: Some(value) })
            }
            _ => l.skip("global_properties", name, "unknown property or invalid value"),
        }
    }

    let mut stmt =
        conn.prepare("SELECT name, id, domain, password_hash, service_key_sha256 FROM users ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (name, id, domain, password_hash, service_key_sha256) = row?;
        let key_ok = service_key_sha256.as_deref().is_none_or(corral_core::user::is_sha256_hex);
        match Uuid::parse_str(&id) {
            Ok(id)
                if corral_core::user::validate_user_name(&name).is_ok() && password_hash.starts_with('$') && key_ok =>
            {
                let user = corral_core::user::User { id, name, domain, password_hash, service_key_sha256 };
                app.apply(Op::PutUser(user));
            }
            _ => l.skip("users", name, "invalid user"),
        }
    }

    let mut children = Children::read(conn)?;
    let mut stmt = conn.prepare("SELECT qid, name, uuid, class, notes, firewall FROM domains ORDER BY qid")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (qid, name, uuid, class, notes, fw) = row?;
        let Some(mut d) = domain_row(&mut l, qid, &name, &uuid, &class) else { continue };
        d.notes = notes;
        d.firewall = match firewall::parse_rules(fw.as_bytes(), 0) {
            Ok(rules) => rules,
            Err(_) if fw.is_empty() => Vec::new(),
            Err(e) => {
                l.skip("domains.firewall", &name, format!("{}; firewall reset to accept", e.message));
                firewall::default_rules()
            }
        };
        children.attach(&mut l, &app, &mut d);
        app.apply(Op::InsertDomain(Box::new(d)));
    }
    Ok((app, l.warnings))
}

fn domain_row(l: &mut Loader, qid: i64, name: &str, uuid: &str, class: &str) -> Option<Domain> {
    let Some(class) = Class::from_name(class) else {
        l.skip("domains", name, format!("unknown class {class}"));
        return None;
    };
    let name_ok =
        if class == Class::AdminVM { name == "dom0" && qid == 0 } else { text::validate_vm_name(name).is_ok() };
    let qid = u32::try_from(qid).ok().filter(|q| *q <= corral_core::app::MAX_QID);
    let uuid = Uuid::parse_str(uuid).ok();
    match (name_ok, qid, uuid) {
        (true, Some(qid), Some(uuid)) => Some(Domain::new(qid, name, uuid, class)),
        _ => {
            l.skip("domains", name, "invalid name, qid or uuid");
            None
        }
    }
}

type VolumeRow =
    (String, String, String, i64, bool, Option<String>, bool, bool, i64, Option<bool>, bool, bool, Option<String>);

/// Child rows of all qubes, read in one pass per table and handed out by qid.
struct Children {
    props: BTreeMap<i64, Vec<(String, String)>>,
    features: BTreeMap<i64, Vec<(String, String)>>,
    tags: BTreeMap<i64, Vec<String>>,
    volumes: BTreeMap<i64, Vec<VolumeRow>>,
    revision_descriptions: BTreeMap<i64, Vec<(String, String, String)>>,
}

impl Children {
    fn read(conn: &Connection) -> Result<Children> {
        let mut c = Children {
            props: BTreeMap::new(),
            features: BTreeMap::new(),
            tags: BTreeMap::new(),
            volumes: BTreeMap::new(),
            revision_descriptions: BTreeMap::new(),
        };
        let mut stmt = conn.prepare("SELECT qid, name, value FROM domain_properties")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))? {
            let (qid, n, v) = row?;
            c.props.entry(qid).or_default().push((n, v));
        }
        let mut stmt = conn.prepare("SELECT qid, name, value FROM features ORDER BY qid, seq")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))? {
            let (qid, n, v) = row?;
            c.features.entry(qid).or_default().push((n, v));
        }
        let mut stmt = conn.prepare("SELECT qid, tag FROM tags")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (qid, t) = row?;
            c.tags.entry(qid).or_default().push(t);
        }
        let mut stmt = conn.prepare(
            "SELECT qid, name, pool, vid, size, rw, source, save_on_stop, snap_on_start, revisions_to_keep, ephemeral,
                    bootable, preallocated, alias
             FROM volumes",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                (
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                ),
            ))
        })? {
            let (qid, v) = row?;
            c.volumes.entry(qid).or_default().push(v);
        }
        let mut stmt = conn.prepare("SELECT qid, volume, revision, description FROM revision_descriptions")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))? {
            let (qid, entry) = row?;
            c.revision_descriptions.entry(qid).or_default().push(entry);
        }
        Ok(c)
    }

    fn attach(&mut self, l: &mut Loader, app: &App, d: &mut Domain) {
        let qid = i64::from(d.qid);
        for (name, value) in self.props.remove(&qid).unwrap_or_default() {
            let key = format!("{}.{name}", d.name);
            let Some(def) = props::vm_prop_def(d.class, &name) else {
                l.skip("domain_properties", key, "unknown property");
                continue;
            };
            let value_ok = props::sanitize(def.ty, value.as_bytes()).is_ok()
                && (def.ty != props::PropType::Label || app.label(&value).is_some());
            if value_ok {
                d.props.insert(name, value);
            } else {
                l.skip("domain_properties", key, "invalid value");
            }
        }
        for (name, value) in self.features.remove(&qid).unwrap_or_default() {
            match plan::validate_feature_name(&name) {
                Ok(()) if value.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
                    d.features.set(&name, &value);
                }
                _ => l.skip("features", format!("{}.{name}", d.name), "invalid feature"),
            }
        }
        for tag in self.tags.remove(&qid).unwrap_or_default() {
            if text::validate_tag(&tag).is_ok() {
                d.tags.insert(tag);
            } else {
                l.skip("tags", format!("{}.{tag}", d.name), "invalid tag");
            }
        }
        let mut volumes: Vec<Volume> = Vec::new();
        for (
            name,
            pool,
            vid,
            size,
            rw,
            source,
            save_on_stop,
            snap_on_start,
            revisions_to_keep,
            ephemeral,
            bootable,
            preallocated,
            alias,
        ) in self.volumes.remove(&qid).unwrap_or_default()
        {
            let vid_ok = !vid.starts_with('/') && !vid.split('/').any(|c| c == "..");
            let ok = is_volume_name(&name) && app.pool(&pool).is_some() && size >= 0 && vid_ok;
            if !ok {
                l.skip("volumes", format!("{}.{name}", d.name), "invalid volume");
                continue;
            }
            volumes.push(Volume {
                name,
                pool,
                vid,
                size: u64::try_from(size).unwrap_or(0),
                rw,
                source,
                save_on_stop,
                snap_on_start,
                revisions_to_keep,
                ephemeral,
                bootable,
                preallocated,
                alias,
            });
        }
        volumes.sort_by_key(|v| volume_order(&v.name));
        d.volumes = volumes;
        for (volume, revision, text) in self.revision_descriptions.remove(&qid).unwrap_or_default() {
            let ok = d.volume(&volume).is_some()
                && text::is_safe_name(&revision)
                && text::validate_revision_description(&text).is_ok();
            if ok {
                d.revision_descriptions.insert((volume, revision), text);
            } else {
                l.skip("revision_descriptions", format!("{}.{volume}.{revision}", d.name), "invalid description");
            }
        }
    }
}
