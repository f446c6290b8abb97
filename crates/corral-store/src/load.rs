//! Reading the model back. Each row is validated as if a client had sent it; a row that fails is
//! quarantined: left in the database untouched (for the operator to repair), kept out of the model, and
//! reported, so one damaged row cannot keep the daemon from starting. A quarantined qube's keys stay
//! reserved, so new qubes do not collide with its row. Columns are read as raw values: a BLOB or bytes
//! that are not UTF-8 make their row invalid, not the load.

use std::collections::{BTreeMap, HashMap};

use corral_core::domain::{Class, Domain};
use corral_core::label::Label;
use corral_core::props::{self, Access};
use corral_core::volume::{is_volume_name, volume_order, Driver, Pool, Volume};
use corral_core::{firewall, plan, text, App, HostInfo, Op};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use uuid::Uuid;

/// A row that was quarantined at load, and why.
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

/// A column as text; `None` for anything else (a BLOB, bytes that are not UTF-8, a number, NULL).
fn text(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(b) => std::str::from_utf8(b).ok().map(str::to_string),
        _ => None,
    })
}

/// A nullable text column: `Some(None)` for NULL, `None` when it holds something else than text.
fn opt_text(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Option<String>>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => Some(None),
        _ => text(r, i)?.map(Some),
    })
}

fn int(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Integer(n) => Some(n),
        _ => None,
    })
}

fn boolean(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<bool>> {
    Ok(int(r, i)?.map(|n| n != 0))
}

fn opt_bool(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Option<bool>>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => Some(None),
        _ => boolean(r, i)?.map(Some),
    })
}

/// A column as the report shows it, whatever it holds.
fn shown(r: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Blob(b) => format!("<BLOB of {} bytes>", b.len()),
    })
}

pub fn load(conn: &Connection, host: HostInfo) -> rusqlite::Result<(App, Vec<LoadWarning>)> {
    let mut app = App::empty(host);
    let mut l = Loader { warnings: Vec::new() };

    let mut stmt = conn.prepare("SELECT idx, name, color FROM labels ORDER BY idx")?;
    let rows = stmt.query_map([], |r| Ok((int(r, 0)?, text(r, 1)?, text(r, 2)?, shown(r, 1)?)))?;
    for row in rows {
        let (idx, name, color, key) = row?;
        let keys = (idx, name.clone());
        let valid = idx.and_then(|i| u32::try_from(i).ok()).filter(|i| *i > 0).zip(
            name.zip(color).filter(|(name, _)| corral_core::label::validate_label_name(name, false).is_ok()).and_then(
                |(name, color)| corral_core::label::parse_label_color(color.as_bytes()).ok().map(|c| (name, c)),
            ),
        );
        match valid {
            Some((index, (name, color))) => app.apply(Op::InsertLabel(Label { index, name, color })),
            None => {
                app.quarantine_label_keys(keys.0, keys.1.as_deref());
                l.skip("labels", key, "invalid label")
            }
        }
    }

    let mut stmt =
        conn.prepare("SELECT name, driver, dir_path, revisions_to_keep, ephemeral_volatile FROM pools ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok(((text(r, 0)?, text(r, 1)?, text(r, 2)?, int(r, 3)?, boolean(r, 4)?), shown(r, 0)?, shown(r, 1)?))
    })?;
    for row in rows {
        let ((name, driver, dir_path, revisions_to_keep, ephemeral_volatile), key, driver_shown) = row?;
        let driver = driver.as_deref().and_then(Driver::from_name);
        match (name, driver, dir_path, revisions_to_keep, ephemeral_volatile) {
            (Some(name), Some(driver), Some(dir_path), Some(revisions_to_keep), Some(ephemeral_volatile))
                if text::is_safe_name(&name) && dir_path.starts_with('/') =>
            {
                let mut pool = Pool::new(&name, driver, &dir_path);
                pool.revisions_to_keep = revisions_to_keep.clamp(-1, driver.max_revisions());
                pool.ephemeral_volatile = ephemeral_volatile;
                app.apply(Op::PutPool(pool));
            }
            _ => l.skip("pools", key, format!("invalid pool (driver {driver_shown})")),
        }
    }

    // References to qubes are checked once every qube is loaded (see `check_references`).
    let mut stmt = conn.prepare("SELECT name, value FROM global_properties")?;
    let rows = stmt.query_map([], |r| Ok((text(r, 0)?, text(r, 1)?, shown(r, 0)?)))?;
    for row in rows {
        let (name, value, key) = row?;
        let def = name.as_deref().and_then(props::global_prop_def).filter(|def| def.access == Access::ReadWrite);
        let (Some(def), Some(name), Some(value)) = (def, name, value) else {
            l.skip("global_properties", key, "unknown property or a value that is not text");
            continue;
        };
        if def.ty == props::PropType::Vm {
            app.apply(Op::SetGlobalProp { name, value: Some(value) });
            continue;
        }
        match app.check_stored_global_prop(&name, &value) {
            Ok(value) => app.apply(Op::SetGlobalProp { name, value: Some(value) }),
            Err(e) => l.skip("global_properties", key, e.message),
        }
    }

    let mut stmt =
        conn.prepare("SELECT name, id, domain, password_hash, service_key_sha256 FROM users ORDER BY name")?;
    let rows = stmt
        .query_map([], |r| Ok(((text(r, 0)?, text(r, 1)?, text(r, 2)?, text(r, 3)?, opt_text(r, 4)?), shown(r, 0)?)))?;
    for row in rows {
        let ((name, id, domain, password_hash, service_key_sha256), key) = row?;
        let user = match (name, id.as_deref().map(Uuid::parse_str), domain, password_hash, service_key_sha256) {
            (Some(name), Some(Ok(id)), Some(domain), Some(password_hash), Some(service_key_sha256))
                if corral_core::user::validate_user_name(&name).is_ok()
                    && password_hash.starts_with('$')
                    && service_key_sha256.as_deref().is_none_or(corral_core::user::is_sha256_hex) =>
            {
                Some(corral_core::user::User { id, name, domain, password_hash, service_key_sha256 })
            }
            _ => None,
        };
        match user {
            Some(user) => app.apply(Op::PutUser(user)),
            None => l.skip("users", key, "invalid user"),
        }
    }

    let mut children = Children::read(conn, &mut l)?;
    let mut images = HashMap::new();
    let mut stmt = conn.prepare("SELECT qid, name, uuid, class, notes, firewall FROM domains ORDER BY qid")?;
    let rows = stmt.query_map([], |r| {
        Ok((int(r, 0)?, text(r, 1)?, text(r, 2)?, text(r, 3)?, text(r, 4)?, text(r, 5)?, shown(r, 1)?))
    })?;
    for row in rows {
        let (qid, name, uuid, class, notes, fw, key) = row?;
        let Some(mut d) = domain_row(&mut l, qid, name.as_deref(), uuid.as_deref(), class.as_deref(), &key) else {
            app.quarantine_keys(qid, name.as_deref(), uuid.as_deref());
            continue;
        };
        // As Set does: unsafe characters become `_`; too long or not text is reported and shown empty.
        d.notes = match notes.map(|n| plan::sanitize_notes(n.as_bytes())) {
            Some(Ok(notes)) => notes,
            Some(Err(e)) => {
                l.skip("domains.notes", &key, format!("{}; shown empty", e.message));
                String::new()
            }
            None => {
                l.skip("domains.notes", &key, "notes are not text; shown empty");
                String::new()
            }
        };
        let parsed = fw.as_deref().map(|fw| (fw.is_empty(), firewall::parse_rules(fw.as_bytes(), 0)));
        d.firewall = match parsed {
            Some((_, Ok(rules))) => rules,
            Some((true, Err(_))) => Vec::new(),
            Some((false, Err(e))) => {
                l.skip("domains.firewall", &key, format!("{}; firewall reset to accept", e.message));
                firewall::default_rules()
            }
            None => {
                l.skip("domains.firewall", &key, "firewall is not text; reset to accept");
                firewall::default_rules()
            }
        };
        children.attach(&mut l, &app, &mut d);
        claim_images(&mut l, &app, &mut images, &mut d);
        app.apply(Op::InsertDomain(Box::new(d)));
    }
    for (qid, rows) in children.orphans() {
        l.skip("domains", format!("qid {qid}"), format!("{rows} rows of a qube that was not loaded"));
    }
    check_references(&mut l, &mut app);
    Ok((app, l.warnings))
}

/// References between qubes (and the checks that look at other qubes) need the whole model: run once
/// everything is loaded, until nothing changes, since dropping one value can break another. A qube
/// whose template does not resolve cannot run at all and is quarantined whole.
fn check_references(l: &mut Loader, app: &mut App) {
    loop {
        let mut ops = Vec::new();
        for def in props::GLOBAL_PROPS.iter().filter(|def| def.ty == props::PropType::Vm) {
            let Some(value) = app.global_explicit(def.name) else { continue };
            let checked = app.check_stored_global_prop(def.name, value);
            if let Err(e) = checked {
                l.skip("global_properties", def.name, e.message);
                ops.push(Op::SetGlobalProp { name: def.name.to_string(), value: None });
            }
        }
        for d in app.domains() {
            if d.class.has_template() && d.template_name().is_none() {
                l.skip("domains", &d.name, "it has no template");
                ops.push(Op::DeleteDomain { qid: d.qid });
                continue;
            }
            for (name, value) in &d.props {
                let Err(e) = app.check_stored_vm_prop(d, name, value) else { continue };
                l.skip("domain_properties", format!("{}.{name}", d.name), e.message);
                if name == "template" {
                    l.skip("domains", &d.name, "its template cannot be used");
                    ops.push(Op::DeleteDomain { qid: d.qid });
                    break;
                }
                ops.push(Op::SetProp { qid: d.qid, name: name.clone(), value: None });
            }
        }
        if ops.is_empty() {
            return;
        }
        for op in ops {
            if let Op::DeleteDomain { qid } = &op {
                let keys = app.domain_by_qid(*qid).map(|d| (d.name.clone(), d.uuid.to_string()));
                if let Some((name, uuid)) = keys {
                    app.quarantine_keys(Some(i64::from(*qid)), Some(&name), Some(&uuid));
                }
            }
            app.apply(op);
        }
    }
}

/// Each image belongs to one volume: a second volume naming it (a damaged or hand-edited store) would
/// let one qube overwrite or delete another's data, so it is quarantined. Kernel volumes only name a
/// shared, read-only kernel.
fn claim_images(l: &mut Loader, app: &App, images: &mut HashMap<(String, String), String>, d: &mut Domain) {
    d.volumes.retain(|v| {
        // A volume on a pool that did not load is unusable, and judged when its pool is back.
        if app.pool(&v.pool).is_none_or(|p| p.driver == Driver::LinuxKernel) {
            return true;
        }
        match images.get(&(v.pool.clone(), v.vid.clone())) {
            Some(owner) => {
                let why = format!("its image {}:{} is already used by {owner}", v.pool, v.vid);
                l.skip("volumes", format!("{}.{}", d.name, v.name), why);
                false
            }
            None => {
                images.insert((v.pool.clone(), v.vid.clone()), format!("{}.{}", d.name, v.name));
                true
            }
        }
    });
}

fn domain_row(
    l: &mut Loader,
    qid: Option<i64>,
    name: Option<&str>,
    uuid: Option<&str>,
    class: Option<&str>,
    key: &str,
) -> Option<Domain> {
    let Some(class) = class.and_then(Class::from_name) else {
        l.skip("domains", key, "unknown class or one that is not text");
        return None;
    };
    let name = name.filter(|name| {
        if class == Class::AdminVM {
            *name == "dom0" && qid == Some(0)
        } else {
            text::validate_vm_name(name).is_ok()
        }
    });
    let qid = qid.and_then(|q| u32::try_from(q).ok()).filter(|q| *q <= corral_core::app::MAX_QID);
    let uuid = uuid.and_then(|u| Uuid::parse_str(u).ok());
    match (name, qid, uuid) {
        (Some(name), Some(qid), Some(uuid)) => Some(Domain::new(qid, name, uuid, class)),
        _ => {
            l.skip("domains", key, "invalid name, qid or uuid");
            None
        }
    }
}

/// A volume row's columns, each `None` when it does not hold a value of its type.
type VolumeRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<bool>,
    Option<Option<String>>,
    Option<bool>,
    Option<bool>,
    Option<i64>,
    Option<Option<bool>>,
    Option<bool>,
    Option<bool>,
    Option<Option<String>>,
);

/// A child row's columns and its key as the report shows it.
type Keyed<T> = (T, String);
/// Rows of one table, by qid.
type ByQid<T> = BTreeMap<i64, Vec<Keyed<T>>>;
type Pair = (Option<String>, Option<String>);

/// Child rows of all qubes, read in one pass per table and handed out by qid.
struct Children {
    props: ByQid<Pair>,
    features: ByQid<Pair>,
    tags: ByQid<Option<String>>,
    volumes: ByQid<VolumeRow>,
    revision_descriptions: ByQid<(Option<String>, Option<String>, Option<String>)>,
}

/// Files a child row under its qube, or reports it when its qid is not even a number.
fn file<T>(
    l: &mut Loader,
    map: &mut BTreeMap<i64, Vec<T>>,
    table: &'static str,
    qid: Option<i64>,
    key: String,
    row: T,
) {
    match qid {
        Some(qid) => map.entry(qid).or_default().push(row),
        None => l.skip(table, key, "qid is not a number"),
    }
}

impl Children {
    fn read(conn: &Connection, l: &mut Loader) -> rusqlite::Result<Children> {
        let mut c = Children {
            props: BTreeMap::new(),
            features: BTreeMap::new(),
            tags: BTreeMap::new(),
            volumes: BTreeMap::new(),
            revision_descriptions: BTreeMap::new(),
        };
        let mut stmt = conn.prepare("SELECT qid, name, value FROM domain_properties")?;
        for row in stmt.query_map([], |r| Ok((int(r, 0)?, text(r, 1)?, text(r, 2)?, shown(r, 1)?)))? {
            let (qid, n, v, key) = row?;
            file(l, &mut c.props, "domain_properties", qid, key.clone(), ((n, v), key));
        }
        let mut stmt = conn.prepare("SELECT qid, name, value FROM features ORDER BY qid, seq")?;
        for row in stmt.query_map([], |r| Ok((int(r, 0)?, text(r, 1)?, text(r, 2)?, shown(r, 1)?)))? {
            let (qid, n, v, key) = row?;
            file(l, &mut c.features, "features", qid, key.clone(), ((n, v), key));
        }
        let mut stmt = conn.prepare("SELECT qid, tag FROM tags")?;
        for row in stmt.query_map([], |r| Ok((int(r, 0)?, text(r, 1)?, shown(r, 1)?)))? {
            let (qid, t, key) = row?;
            file(l, &mut c.tags, "tags", qid, key.clone(), (t, key));
        }
        let mut stmt = conn.prepare(
            "SELECT qid, name, pool, vid, size, rw, source, save_on_stop, snap_on_start, revisions_to_keep, ephemeral,
                    bootable, preallocated, alias
             FROM volumes",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                int(r, 0)?,
                (
                    text(r, 1)?,
                    text(r, 2)?,
                    text(r, 3)?,
                    int(r, 4)?,
                    boolean(r, 5)?,
                    opt_text(r, 6)?,
                    boolean(r, 7)?,
                    boolean(r, 8)?,
                    int(r, 9)?,
                    opt_bool(r, 10)?,
                    boolean(r, 11)?,
                    boolean(r, 12)?,
                    opt_text(r, 13)?,
                ),
                shown(r, 1)?,
            ))
        })? {
            let (qid, v, key) = row?;
            file(l, &mut c.volumes, "volumes", qid, key.clone(), (v, key));
        }
        let mut stmt = conn.prepare("SELECT qid, volume, revision, description FROM revision_descriptions")?;
        for row in stmt.query_map([], |r| {
            Ok((int(r, 0)?, (text(r, 1)?, text(r, 2)?, text(r, 3)?), format!("{}.{}", shown(r, 1)?, shown(r, 2)?)))
        })? {
            let (qid, entry, key) = row?;
            file(l, &mut c.revision_descriptions, "revision_descriptions", qid, key.clone(), (entry, key));
        }
        Ok(c)
    }

    /// Rows left over once every qube took its own: they belong to qubes that were not loaded.
    fn orphans(&self) -> BTreeMap<i64, usize> {
        let mut counts = BTreeMap::new();
        let lens = [
            self.props.iter().map(|(q, v)| (*q, v.len())).collect::<Vec<_>>(),
            self.features.iter().map(|(q, v)| (*q, v.len())).collect(),
            self.tags.iter().map(|(q, v)| (*q, v.len())).collect(),
            self.volumes.iter().map(|(q, v)| (*q, v.len())).collect(),
            self.revision_descriptions.iter().map(|(q, v)| (*q, v.len())).collect(),
        ];
        for (qid, n) in lens.into_iter().flatten() {
            *counts.entry(qid).or_default() += n;
        }
        counts
    }

    fn attach(&mut self, l: &mut Loader, app: &App, d: &mut Domain) {
        let qid = i64::from(d.qid);
        // Values are checked by `check_references`, once every qube they may name is loaded.
        for ((name, value), key) in self.props.remove(&qid).unwrap_or_default() {
            let key = format!("{}.{key}", d.name);
            match (name, value) {
                (Some(name), Some(value)) if props::vm_prop_def(d.class, &name).is_some() => {
                    d.props.insert(name, value);
                }
                (Some(_), Some(_)) => l.skip("domain_properties", key, "unknown property"),
                _ => l.skip("domain_properties", key, "name or value is not text"),
            }
        }
        for ((name, value), key) in self.features.remove(&qid).unwrap_or_default() {
            match (name, value) {
                (Some(name), Some(value)) if stored_feature_ok(&name, &value) => {
                    d.features.set(&name, &value);
                }
                _ => l.skip("features", format!("{}.{key}", d.name), "invalid feature"),
            }
        }
        for (tag, key) in self.tags.remove(&qid).unwrap_or_default() {
            match tag.filter(|tag| text::validate_tag(tag).is_ok()) {
                Some(tag) => {
                    d.tags.insert(tag);
                }
                None => l.skip("tags", format!("{}.{key}", d.name), "invalid tag"),
            }
        }
        let mut volumes: Vec<Volume> = Vec::new();
        for (row, key) in self.volumes.remove(&qid).unwrap_or_default() {
            let key = format!("{}.{key}", d.name);
            let Some(volume) = volume_row(row) else {
                l.skip("volumes", key, "invalid volume");
                continue;
            };
            // Kept, so that nothing deletes or reuses its image, but it cannot be used until its pool is back.
            if app.pool(&volume.pool).is_none() {
                l.skip("volumes", key, format!("pool {} is not loaded: the volume is unusable", volume.pool));
            }
            volumes.push(volume);
        }
        volumes.sort_by_key(|v| volume_order(&v.name));
        d.volumes = volumes;
        for ((volume, revision, description), key) in self.revision_descriptions.remove(&qid).unwrap_or_default() {
            match (volume, revision, description) {
                (Some(volume), Some(revision), Some(description))
                    if d.volume(&volume).is_some()
                        && text::is_safe_name(&revision)
                        && text::validate_revision_description(&description).is_ok() =>
                {
                    d.revision_descriptions.insert((volume, revision), description);
                }
                _ => l.skip("revision_descriptions", format!("{}.{key}", d.name), "invalid description"),
            }
        }
    }
}

/// A client's Set rules, except that the features the daemon keeps for itself (which clients may not set)
/// load.
fn stored_feature_ok(name: &str, value: &str) -> bool {
    let kept_by_daemon = plan::PROTECTED_FEATURES.contains(&name);
    let checked_as = if kept_by_daemon { "x-protected" } else { name };
    plan::validate_feature(checked_as, value).is_ok()
}

fn volume_row(row: VolumeRow) -> Option<Volume> {
    let (
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
    ) = row;
    let (name, pool, vid) = (name?, pool?, vid?);
    let vid_ok = !vid.starts_with('/') && !vid.split('/').any(|c| c == "..");
    if !is_volume_name(&name) || !vid_ok {
        return None;
    }
    Some(Volume {
        name,
        pool,
        vid,
        size: u64::try_from(size?).ok()?,
        rw: rw?,
        source: source?,
        save_on_stop: save_on_stop?,
        snap_on_start: snap_on_start?,
        revisions_to_keep: revisions_to_keep?,
        ephemeral: ephemeral?,
        bootable: bootable?,
        preallocated: preallocated?,
        alias: alias?,
    })
}

#[cfg(test)]
mod tests {
    use corral_core::domain::{Class, Domain};
    use corral_core::volume::Volume;

    use super::*;
    use crate::{Durability, SqliteStore, StateStore};

    const HOST: HostInfo = HostInfo { memory_mib: 1024, cpus: 1 };

    fn volume(name: &str, pool: &str, vid: &str) -> Volume {
        Volume {
            name: name.into(),
            pool: pool.into(),
            vid: vid.into(),
            size: 1,
            rw: true,
            source: None,
            save_on_stop: true,
            snap_on_start: false,
            revisions_to_keep: 0,
            ephemeral: None,
            bootable: false,
            preallocated: false,
            alias: None,
        }
    }

    /// A store with dom0, `a` (qid 1) and `b` (qid 2), both standalone with a private and a kernel volume.
    fn store(dir: &std::path::Path) -> Connection {
        let path = dir.join("corral.sqlite");
        let mut store = SqliteStore::open(&path, Durability::default()).expect("store");
        store.commit(&App::initial_ops("/var/lib/corral", "/var/lib/corral/vm-kernels")).expect("initial");
        for (qid, name) in [(1, "a"), (2, "b")] {
            let mut d = Domain::new(qid, name, Uuid::from_u128(u128::from(qid)), Class::StandaloneVM);
            d.props.insert("label".into(), "red".into());
            d.volumes.push(volume("private", "varlibqubes", &format!("appvms/{name}/private")));
            d.volumes.push(volume("kernel", "linux-kernel", "6.1"));
            store.commit(&[Op::InsertDomain(Box::new(d))]).expect("insert");
        }
        Connection::open(&path).expect("open")
    }

    fn tables(warnings: &[LoadWarning]) -> Vec<&str> {
        warnings.iter().map(|w| w.table).collect()
    }

    #[test]
    fn a_quarantined_qubes_keys_are_not_given_to_new_qubes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = store(dir.path());
        conn.execute_batch("UPDATE domains SET class = X'00' WHERE name = 'a'").expect("corrupt");

        let (app, warnings) = load(&conn, HOST).expect("load");

        assert!(app.domain("a").is_none());
        assert_eq!(app.free_qid(), Some(3));
        assert!(app.is_quarantined_name("a"));
        assert!(app.is_quarantined_uuid(&Uuid::from_u128(1)));
        assert!(tables(&warnings).contains(&"domains"), "{warnings:?}");
    }

    #[test]
    fn values_that_are_not_text_quarantine_their_row_in_every_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = store(dir.path());
        conn.execute_batch(
            "INSERT INTO features(qid, name, value, seq) VALUES (1, 'f', X'FF', 1), (1, 'service.a/b', '1', 2),
                 (1, 'preload-dispvm', 'disp1', 3);
             INSERT INTO tags(qid, tag) VALUES (1, X'6869');
             INSERT INTO domain_properties(qid, name, value) VALUES (1, 'memory', CAST(X'FF' AS TEXT));
             INSERT INTO global_properties(name, value) VALUES (X'00', 'x');
             INSERT INTO labels(idx, name, color) VALUES (20, 'odd', X'00');
             UPDATE pools SET dir_path = X'2F' WHERE name = 'varlibqubes';
             UPDATE volumes SET size = 'big' WHERE qid = 2 AND name = 'private';",
        )
        .expect("corrupt");

        let (app, warnings) = load(&conn, HOST).expect("load");

        let a = app.domain("a").expect("a");
        assert!(a.features.get("f").is_none() && a.tags.is_empty() && a.prop("memory").is_none());
        assert!(a.features.get("service.a/b").is_none());
        assert_eq!(a.features.get("preload-dispvm"), Some("disp1"));
        let label = app.plan_label_create("new", "0x123456").expect("label");
        assert!(matches!(&label.ops[..], [Op::InsertLabel(l)] if l.index == 21), "{:?}", label.ops);
        assert!(app.plan_label_create("odd", "0x123456").is_err());
        assert!(app.domain("b").expect("b").volume("private").is_none());
        let mut seen = tables(&warnings);
        seen.sort();
        seen.dedup();
        for table in ["domain_properties", "features", "global_properties", "labels", "pools", "tags", "volumes"] {
            assert!(seen.contains(&table), "{table} not reported: {warnings:?}");
        }
    }

    #[test]
    fn a_second_volume_on_one_image_is_quarantined_and_kernels_are_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = store(dir.path());
        conn.execute_batch("UPDATE volumes SET vid = 'appvms/a/private' WHERE qid = 2 AND name = 'private'")
            .expect("corrupt");

        let (app, warnings) = load(&conn, HOST).expect("load");

        assert!(app.domain("a").expect("a").volume("private").is_some());
        let b = app.domain("b").expect("b");
        assert!(b.volume("private").is_none());
        assert!(b.volume("kernel").is_some());
        assert_eq!(tables(&warnings), ["volumes"], "{warnings:?}");
    }
}
