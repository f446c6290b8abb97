//! The schema and its versions. A newer database than this daemon knows is refused rather than guessed at.

use rusqlite::Connection;

use crate::{classify, Result, StoreError};

const VERSION: i64 = 7;

const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domains (
    qid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uuid TEXT NOT NULL UNIQUE,
    class TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    firewall TEXT NOT NULL DEFAULT ''
);
CREATE TABLE domain_properties (
    qid INTEGER NOT NULL REFERENCES domains(qid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (qid, name)
) WITHOUT ROWID;
CREATE TABLE features (
    qid INTEGER NOT NULL REFERENCES domains(qid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (qid, name)
) WITHOUT ROWID;
CREATE TABLE tags (
    qid INTEGER NOT NULL REFERENCES domains(qid) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (qid, tag)
) WITHOUT ROWID;
CREATE TABLE volumes (
    qid INTEGER NOT NULL REFERENCES domains(qid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    pool TEXT NOT NULL,
    vid TEXT NOT NULL,
    size INTEGER NOT NULL,
    rw INTEGER NOT NULL,
    source TEXT,
    save_on_stop INTEGER NOT NULL,
    snap_on_start INTEGER NOT NULL,
    revisions_to_keep INTEGER NOT NULL,
    ephemeral INTEGER,
    PRIMARY KEY (qid, name)
) WITHOUT ROWID;
CREATE TABLE global_properties (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE labels (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, color TEXT NOT NULL);
CREATE TABLE pools (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    driver TEXT NOT NULL,
    dir_path TEXT NOT NULL,
    revisions_to_keep INTEGER NOT NULL,
    ephemeral_volatile INTEGER NOT NULL
);
";

const V2: &str = "
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
";

const V3: &str = "
ALTER TABLE users ADD COLUMN service_key_sha256 TEXT;
";

/// Stores from before fresh ones set `default_pool_kernel` (as Qubes' installer does) got `linux-kernel`
/// from its default rule, which now follows `default_pool` as upstream's: keep their value by setting it.
const V4: &str = "
INSERT OR IGNORE INTO global_properties(name, value)
    SELECT 'default_pool_kernel', 'linux-kernel' WHERE EXISTS (SELECT 1 FROM pools WHERE name = 'linux-kernel');
";

/// Snapshot descriptions given over HTTP, by revision.
const V5: &str = "
CREATE TABLE revision_descriptions (
    qid INTEGER NOT NULL REFERENCES domains(qid) ON DELETE CASCADE,
    volume TEXT NOT NULL,
    revision TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (qid, volume, revision)
) WITHOUT ROWID;
";

/// Further disks over HTTP: the one a qube boots from, fully allocated ones, and the names users gave them.
const V6: &str = "
ALTER TABLE volumes ADD COLUMN bootable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN preallocated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN alias TEXT;
";

/// Qube state the HTTP door keeps was stored under door-named features; the names now say whose state it is
/// (the daemon's), not which door set it. Where a qube somehow has both, the daemon's old value wins: it is
/// the one that was in use.
const V7: &str = "
UPDATE OR REPLACE features SET name = 'corral.cdrom' WHERE name = 'rest.cdrom';
UPDATE OR REPLACE features SET name = 'corral.network' WHERE name = 'rest.network';
UPDATE OR REPLACE features SET name = 'corral.nic-name' WHERE name = 'rest.nic-name';
";

/// Each version's changes, applied in order from the database's own version, each in its transaction.
const MIGRATIONS: [&str; VERSION as usize] = [V1, V2, V3, V4, V5, V6, V7];

pub fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(classify)?;
    if version > VERSION {
        return Err(StoreError::SchemaTooNew { found: version, known: VERSION });
    }
    for (done, sql) in (1..).zip(MIGRATIONS) {
        if version < done {
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version = {done}; COMMIT;")).map_err(classify)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use corral_core::HostInfo;

    use super::*;
    use crate::{Durability, SqliteStore, StateStore};

    /// A version-3 store without an explicit kernel pool keeps `linux-kernel`, now set; one whose
    /// `linux-kernel` pool is gone keeps following `default_pool`.
    #[test]
    fn a_version_3_database_keeps_its_kernel_pool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (with, without) = (dir.path().join("with.sqlite"), dir.path().join("without.sqlite"));
        for (path, pool) in [(&with, "linux-kernel"), (&without, "other")] {
            let conn = Connection::open(path).expect("open");
            conn.execute_batch(&format!("BEGIN; {V1} {V2} {V3} PRAGMA user_version = 3; COMMIT;")).expect("v3");
            conn.execute(
                "INSERT INTO pools(name, seq, driver, dir_path, revisions_to_keep, ephemeral_volatile) \
                 VALUES (?1, 1, 'linux-kernel', '/k', 0, 0)",
                [pool],
            )
            .expect("pool");
        }

        let kernel_pool = |path: &std::path::Path| {
            let store = SqliteStore::open(path, Durability::default()).expect("migrated");
            let (app, _) = store.load(HostInfo { memory_mib: 1024, cpus: 1 }).expect("load");
            app.global_explicit("default_pool_kernel").map(str::to_string)
        };

        assert_eq!(kernel_pool(&with).as_deref(), Some("linux-kernel"));
        assert_eq!(kernel_pool(&without), None);
    }

    /// A version-6 store's door-named qube state loads under the new names; where a qube has both, the value
    /// the daemon used (the old name's) is kept; other features are untouched.
    #[test]
    fn a_version_6_database_gets_the_neutral_feature_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("corral.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(&format!("BEGIN; {V1} {V2} {V3} {V4} {V5} {V6} PRAGMA user_version = 6; COMMIT;"))
                .expect("v6");
            conn.execute_batch(
                "INSERT INTO domains(qid, name, uuid, class) VALUES
                     (1, 'work', '00000000-0000-0000-0000-000000000001', 'StandaloneVM'),
                     (2, 'both', '00000000-0000-0000-0000-000000000002', 'StandaloneVM');
                 INSERT INTO features(qid, name, value, seq) VALUES
                     (1, 'rest.cdrom', 'install.iso', 1), (1, 'rest.network', 'lab', 2),
                     (1, 'rest.nic-name', 'eth-a', 3), (1, 'rest.other', 'kept', 4),
                     (2, 'corral.cdrom', 'typed-by-hand.iso', 1), (2, 'rest.cdrom', 'in-use.iso', 2);",
            )
            .expect("v6 rows");
        }

        let store = SqliteStore::open(&path, Durability::default()).expect("migrated");
        let (app, warnings) = store.load(HostInfo { memory_mib: 1024, cpus: 1 }).expect("load");

        assert!(warnings.is_empty(), "{warnings:?}");
        let features = |qube: &str| -> Vec<(String, String)> {
            let d = app.domain(qube).expect("loaded");
            d.features.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            features("work"),
            pairs(&[
                (corral_core::domain::CDROM_FEATURE, "install.iso"),
                (corral_core::domain::NETWORK_FEATURE, "lab"),
                (corral_core::domain::NIC_NAME_FEATURE, "eth-a"),
                ("rest.other", "kept"),
            ])
        );
        assert_eq!(features("both"), pairs(&[(corral_core::domain::CDROM_FEATURE, "in-use.iso")]));
        let version: i64 =
            Connection::open(&path).expect("open").pragma_query_value(None, "user_version", |r| r.get(0)).expect("v");
        assert_eq!(version, VERSION);
    }

    /// A database a version-2 daemon wrote (users without service keys) opens, keeps its users, and takes
    /// service keys from then on.
    #[test]
    fn a_version_2_database_is_migrated_and_keeps_its_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("corral.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(&format!("BEGIN; {V1} {V2} PRAGMA user_version = 2; COMMIT;")).expect("v2");
            conn.execute(
                "INSERT INTO users(name, id, domain, password_hash) VALUES ('admin', \
                 '0b4e2f63-5d9e-4fd6-9c1f-8f2b8e4d2a10', 'internal', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA')",
                [],
            )
            .expect("user");
        }

        let mut store = SqliteStore::open(&path, Durability::default()).expect("migrated");
        let (app, warnings) = store.load(HostInfo { memory_mib: 1024, cpus: 1 }).expect("load");

        assert!(warnings.is_empty(), "{warnings:?}");
        let admin = app.user("admin").expect("kept").clone();
        assert_eq!(admin.service_key_sha256, None);
        let keyed = corral_core::user::User { service_key_sha256: Some("ab".repeat(32)), ..admin };
        store.commit(&[corral_core::Op::PutUser(keyed)]).expect("commit");
        let (app, _) = store.load(HostInfo { memory_mib: 1024, cpus: 1 }).expect("reload");
        assert_eq!(app.user("admin").and_then(|u| u.service_key_sha256.clone()), Some("ab".repeat(32)));
        let version: i64 =
            Connection::open(&path).expect("open").pragma_query_value(None, "user_version", |r| r.get(0)).expect("v");
        assert_eq!(version, VERSION);
    }

    /// A revision's description is written with the qube, set and removed by its op, and read back only for a
    /// volume the qube has.
    #[test]
    fn revision_descriptions_round_trip_and_need_their_volume() {
        use corral_core::domain::{Class, Domain};
        use corral_core::volume::Volume;
        use corral_core::{App, Op};

        let host = HostInfo { memory_mib: 1024, cpus: 1 };
        let mut store = SqliteStore::open_in_memory().expect("store");
        store.commit(&App::initial_ops("/var/lib/corral", "/var/lib/corral/vm-kernels")).expect("initial");
        let mut d = Domain::new(1, "work", uuid::Uuid::from_u128(7), Class::StandaloneVM);
        d.volumes.push(Volume {
            name: "private".into(),
            pool: "varlibqubes".into(),
            vid: "appvms/work/private".into(),
            size: 1,
            rw: true,
            source: None,
            save_on_stop: true,
            snap_on_start: false,
            revisions_to_keep: 1,
            ephemeral: None,
            bootable: false,
            preallocated: false,
            alias: None,
        });
        d.revision_descriptions.insert(("private".into(), "1-back".into()), "first".into());
        store.commit(&[Op::InsertDomain(Box::new(d))]).expect("insert");
        let set = |revision: &str, volume: &str, text: Option<&str>| Op::SetRevisionDescription {
            qid: 1,
            volume: volume.into(),
            revision: revision.into(),
            description: text.map(str::to_string),
        };
        store
            .commit(&[set("2-back", "private", Some("second \u{e9}\nline")), set("1-back", "private", None)])
            .expect("set");
        store.commit(&[set("3-back", "root", Some("no such volume"))]).expect("orphan");

        let (app, warnings) = store.load(host).expect("load");

        let work = app.domain("work").expect("work");
        let kept: Vec<_> = work.revision_descriptions.iter().collect();
        assert_eq!(kept, [(&("private".to_string(), "2-back".to_string()), &"second \u{e9}\nline".to_string())]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].table, "revision_descriptions");
    }
}
