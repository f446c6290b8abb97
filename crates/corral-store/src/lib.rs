//! Corral's durable state. The service sees it through [`StateStore`]: a model's `Op`s committed one
//! transaction per call, the whole model read back at start (rows that no longer validate are skipped with a
//! warning). [`SqliteStore`] is the implementation the daemon uses; its SQL types stay inside this crate, so
//! another backend (a database shared by several hosts) can take its place without the service changing.

mod load;
pub mod qubes_xml;
mod schema;

use std::path::Path;

use corral_core::firewall::Rule;
use corral_core::{App, HostInfo, Op};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction};

pub use load::LoadWarning;

/// What a backend reported, kept for the log; callers decide by the [`StoreError`] variant.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Store failures by what they mean to the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Cannot open the state database {path}")]
    Open {
        path: String,
        #[source]
        source: Box<StoreError>,
    },
    /// The database's content or structure is damaged: retrying will not help, a backup might.
    #[error("The state database is damaged")]
    Corrupt(#[source] Cause),
    /// Reading or writing failed below the database: a full disk, an I/O error, missing permissions.
    #[error("The state database cannot be read or written")]
    Io(#[source] Cause),
    /// Another process holds the database longer than the store waits for it.
    #[error("The state database is in use by another process")]
    Busy(#[source] Cause),
    /// The change contradicts what is stored (a key already taken, a reference to a missing row): nothing
    /// was written.
    #[error("The change conflicts with the state database's content")]
    Conflict(#[source] Cause),
    #[error("State database has schema version {found}, this daemon knows up to {known}")]
    SchemaTooNew { found: i64, known: i64 },
    /// Anything else the backend reported: a fault of this program rather than of the data or the host.
    #[error("State database error")]
    Internal(#[source] Cause),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SQLite's error, by its meaning.
fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(Box::new(e)),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(Box::new(e)),
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(Box::new(e)),
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::NoLargeFileSupport,
        ) => StoreError::Io(Box::new(e)),
        _ => StoreError::Internal(Box::new(e)),
    }
}

/// How hard a commit pushes data to disk. Both survive a crash of the daemon (`kill -9`): the WAL is in
/// the kernel's page cache once `COMMIT` returns. `PowerLoss` also survives a power loss, at an fsync per
/// call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    #[default]
    ProcessCrash,
    PowerLoss,
}

/// The persistence the service needs. Every method is one transaction of the backend: a commit that fails
/// leaves the store as it was, and a load sees one consistent state.
pub trait StateStore: Send {
    /// False until the first commit (a fresh store): the caller then gives it what a fresh install has.
    fn is_initialized(&self) -> Result<bool>;

    /// Writes `ops` in one transaction at the store's [`Durability`]; nothing is written if any fails.
    fn commit(&mut self, ops: &[Op]) -> Result<()>;

    /// Reads the whole model. Rows that do not validate are kept out of it, left as they are in the store,
    /// and reported; they are never fatal.
    fn load(&self, host: HostInfo) -> Result<(App, Vec<LoadWarning>)>;

    /// The backend's own consistency check: the problems it found, none when healthy.
    fn integrity_check(&self) -> Result<Vec<String>>;

    /// Stored qubes other than dom0, whether they load or not.
    fn qube_rows(&self) -> Result<u64>;

    /// Whether the operator chose to run this store although it held no qubes beside existing images.
    fn empty_store_accepted(&self) -> Result<bool>;

    fn accept_empty_store(&mut self) -> Result<()>;
}

/// The state in one SQLite file, in WAL mode.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (and making it private to its owner, with its WAL and
    /// shared-memory files, which SQLite creates with the database's mode) when it does not exist, and
    /// migrating an older schema.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let opened = create_private(path)
            .map_err(|e| StoreError::Io(Box::new(e)))
            .and_then(|()| Connection::open(path).map_err(classify))
            .and_then(|conn| Self::init(conn, durability));
        opened.map_err(|e| StoreError::Open { path: path.display().to_string(), source: Box::new(e) })
    }

    pub fn open_in_memory() -> Result<SqliteStore> {
        Self::init(Connection::open_in_memory().map_err(classify)?, Durability::ProcessCrash)
    }

    fn init(conn: Connection, durability: Durability) -> Result<SqliteStore> {
        let sync = match durability {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", sync))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .map_err(classify)?;
        schema::migrate(&conn)?;
        Ok(SqliteStore { conn })
    }

    fn meta(&self, key: &str) -> Result<bool> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(classify)?;
        Ok(v.is_some())
    }
}

/// Creates an empty file readable by its owner only, whatever the process's umask; an existing one is left
/// as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl StateStore for SqliteStore {
    fn is_initialized(&self) -> Result<bool> {
        self.meta("initialized")
    }

    fn commit(&mut self, ops: &[Op]) -> Result<()> {
        let tx = self.conn.transaction().map_err(classify)?;
        for op in ops {
            write_op(&tx, op).map_err(classify)?;
        }
        tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('initialized', '1')", []).map_err(classify)?;
        // Dropping the transaction on an error above rolls it back.
        tx.commit().map_err(classify)
    }

    fn load(&self, host: HostInfo) -> Result<(App, Vec<LoadWarning>)> {
        // One read transaction, so that a concurrent writer cannot be seen half-way.
        let tx = self.conn.unchecked_transaction().map_err(classify)?;
        let loaded = load::load(&tx, host).map_err(classify)?;
        tx.finish().map_err(classify)?;
        Ok(loaded)
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(classify)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(classify)?;
        let answers = rows.collect::<rusqlite::Result<Vec<String>>>().map_err(classify)?;
        Ok(answers.into_iter().filter(|a| a != "ok").collect())
    }

    fn qube_rows(&self) -> Result<u64> {
        let n: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM domains WHERE qid != 0", [], |r| r.get(0)).map_err(classify)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn empty_store_accepted(&self) -> Result<bool> {
        self.meta("empty_store_accepted")
    }

    fn accept_empty_store(&mut self) -> Result<()> {
        self.conn
            .execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('empty_store_accepted', '1')", [])
            .map_err(classify)?;
        Ok(())
    }
}

fn rules_text(rules: &[Rule]) -> String {
    rules.iter().map(|r| r.to_line() + "\n").collect()
}

fn write_op(tx: &Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::InsertDomain(d) => {
            tx.prepare_cached(
                "INSERT INTO domains(qid, name, uuid, class, notes, firewall) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                d.qid,
                d.name,
                d.uuid.to_string(),
                d.class.name(),
                d.notes,
                rules_text(&d.firewall)
            ])?;
            for (name, value) in &d.props {
                write_op(tx, &Op::SetProp { qid: d.qid, name: name.clone(), value: Some(value.clone()) })?;
            }
            for (name, value) in d.features.iter() {
                write_op(tx, &Op::SetFeature { qid: d.qid, name: name.into(), value: Some(value.into()) })?;
            }
            for tag in &d.tags {
                write_op(tx, &Op::SetTag { qid: d.qid, tag: tag.clone(), present: true })?;
            }
            for v in &d.volumes {
                write_op(tx, &Op::SetVolume { qid: d.qid, volume: v.clone() })?;
            }
            for ((volume, revision), text) in &d.revision_descriptions {
                write_op(
                    tx,
                    &Op::SetRevisionDescription {
                        qid: d.qid,
                        volume: volume.clone(),
                        revision: revision.clone(),
                        description: Some(text.clone()),
                    },
                )?;
            }
        }
        Op::DeleteDomain { qid } => {
            tx.prepare_cached("DELETE FROM domains WHERE qid = ?1")?.execute([qid])?;
        }
        Op::SetProp { qid, name, value: Some(value) } => {
            tx.prepare_cached(
                "INSERT INTO domain_properties(qid, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(qid, name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![qid, name, value])?;
        }
        Op::SetProp { qid, name, value: None } => {
            tx.prepare_cached("DELETE FROM domain_properties WHERE qid = ?1 AND name = ?2")?
                .execute(params![qid, name])?;
        }
        Op::SetFeature { qid, name, value: Some(value) } => {
            tx.prepare_cached(
                "INSERT INTO features(qid, name, value, seq)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM features WHERE qid = ?1))
                 ON CONFLICT(qid, name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![qid, name, value])?;
        }
        Op::SetFeature { qid, name, value: None } => {
            tx.prepare_cached("DELETE FROM features WHERE qid = ?1 AND name = ?2")?.execute(params![qid, name])?;
        }
        Op::SetTag { qid, tag, present: true } => {
            tx.prepare_cached("INSERT OR IGNORE INTO tags(qid, tag) VALUES (?1, ?2)")?.execute(params![qid, tag])?;
        }
        Op::SetTag { qid, tag, present: false } => {
            tx.prepare_cached("DELETE FROM tags WHERE qid = ?1 AND tag = ?2")?.execute(params![qid, tag])?;
        }
        Op::SetFirewall { qid, rules } => {
            tx.prepare_cached("UPDATE domains SET firewall = ?2 WHERE qid = ?1")?
                .execute(params![qid, rules_text(rules)])?;
        }
        Op::SetNotes { qid, text } => {
            tx.prepare_cached("UPDATE domains SET notes = ?2 WHERE qid = ?1")?.execute(params![qid, text])?;
        }
        Op::SetVolume { qid, volume: v } => {
            tx.prepare_cached(
                "INSERT INTO volumes(qid, name, pool, vid, size, rw, source, save_on_stop, snap_on_start,
                                     revisions_to_keep, ephemeral, bootable, preallocated, alias)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT(qid, name) DO UPDATE SET pool = excluded.pool, vid = excluded.vid, size = excluded.size,
                    rw = excluded.rw, source = excluded.source, save_on_stop = excluded.save_on_stop,
                    snap_on_start = excluded.snap_on_start, revisions_to_keep = excluded.revisions_to_keep,
                    ephemeral = excluded.ephemeral, bootable = excluded.bootable,
                    preallocated = excluded.preallocated, alias = excluded.alias",
            )?
            .execute(params![
                qid,
                v.name,
                v.pool,
                v.vid,
                i64::try_from(v.size).unwrap_or(i64::MAX),
                v.rw,
                v.source,
                v.save_on_stop,
                v.snap_on_start,
                v.revisions_to_keep,
                v.ephemeral,
                v.bootable,
                v.preallocated,
                v.alias
            ])?;
        }
        Op::DeleteVolume { qid, name } => {
            tx.prepare_cached("DELETE FROM volumes WHERE qid = ?1 AND name = ?2")?.execute(params![qid, name])?;
        }
        Op::SetRevisionDescription { qid, volume, revision, description: Some(text) } => {
            tx.prepare_cached(
                "INSERT INTO revision_descriptions(qid, volume, revision, description) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(qid, volume, revision) DO UPDATE SET description = excluded.description",
            )?
            .execute(params![qid, volume, revision, text])?;
        }
        Op::SetRevisionDescription { qid, volume, revision, description: None } => {
            tx.prepare_cached("DELETE FROM revision_descriptions WHERE qid = ?1 AND volume = ?2 AND revision = ?3")?
                .execute(params![qid, volume, revision])?;
        }
        Op::SetGlobalProp { name, value: Some(value) } => {
            tx.prepare_cached(
                "INSERT INTO global_properties(name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, value])?;
        }
        Op::SetGlobalProp { name, value: None } => {
            tx.prepare_cached("DELETE FROM global_properties WHERE name = ?1")?.execute([name])?;
        }
        Op::InsertLabel(l) => {
            tx.prepare_cached("INSERT INTO labels(idx, name, color) VALUES (?1, ?2, ?3)")?
                .execute(params![l.index, l.name, l.color])?;
        }
        Op::DeleteLabel { index } => {
            tx.prepare_cached("DELETE FROM labels WHERE idx = ?1")?.execute([index])?;
        }
        Op::PutPool(p) => {
            tx.prepare_cached(
                "INSERT INTO pools(name, seq, driver, dir_path, revisions_to_keep, ephemeral_volatile)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pools), ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET driver = excluded.driver, dir_path = excluded.dir_path,
                    revisions_to_keep = excluded.revisions_to_keep, ephemeral_volatile = excluded.ephemeral_volatile",
            )?
            .execute(params![
                p.name,
                p.driver.name(),
                p.dir_path,
                p.revisions_to_keep,
                p.ephemeral_volatile
            ])?;
        }
        Op::DeletePool { name } => {
            tx.prepare_cached("DELETE FROM pools WHERE name = ?1")?.execute([name])?;
        }
        Op::PutUser(u) => {
            tx.prepare_cached(
                "INSERT INTO users(name, id, domain, password_hash, service_key_sha256) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET domain = excluded.domain, password_hash = excluded.password_hash,
                 service_key_sha256 = excluded.service_key_sha256",
            )?
            .execute(params![
                u.name,
                u.id.to_string(),
                u.domain,
                u.password_hash,
                u.service_key_sha256
            ])?;
        }
        Op::DeleteUser { name } => {
            tx.prepare_cached("DELETE FROM users WHERE name = ?1")?.execute([name])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use corral_core::domain::{Class, Domain};
    use corral_core::label::Label;
    use corral_core::user::User;
    use corral_core::volume::Volume;
    use uuid::Uuid;

    use super::*;

    const HOST: HostInfo = HostInfo { memory_mib: 1024, cpus: 1 };

    fn fresh() -> SqliteStore {
        let mut store = SqliteStore::open_in_memory().expect("store");
        store.commit(&App::initial_ops("/var/lib/corral", "/var/lib/corral/vm-kernels")).expect("initial");
        store
    }

    /// A qube using every kind of row a qube has.
    fn qube(qid: u32, name: &str) -> Domain {
        let mut d = Domain::new(qid, name, Uuid::from_u128(u128::from(qid)), Class::StandaloneVM);
        d.props.insert("label".into(), "green".into());
        d.props.insert("memory".into(), "800".into());
        d.features.set("service.x", "1");
        d.features.set(corral_core::domain::CDROM_FEATURE, "install.iso");
        d.tags.insert("work".into());
        d.notes = "kept as written".into();
        d.firewall =
            corral_core::firewall::parse_rules(b"action=drop dsthost=10.0.0.1\naction=accept\n", 0).expect("rules");
        d.volumes.push(Volume {
            name: "private".into(),
            pool: "varlibqubes".into(),
            vid: format!("appvms/{name}/private"),
            size: 2 << 30,
            rw: true,
            source: None,
            save_on_stop: true,
            snap_on_start: false,
            revisions_to_keep: 1,
            ephemeral: None,
            bootable: false,
            preallocated: true,
            alias: Some("data".into()),
        });
        d.revision_descriptions.insert(("private".into(), "1-back".into()), "before the upgrade".into());
        d
    }

    /// Everything a load shows of the store, in a form two loads can be compared by.
    fn snapshot(store: &dyn StateStore) -> (String, Vec<Domain>, Vec<User>) {
        let (app, warnings) = store.load(HOST).expect("load");
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut domains: Vec<Domain> = app.domains().cloned().collect();
        domains.sort_by_key(|d| d.qid);
        (qubes_xml::export(&app), domains, app.users().cloned().collect())
    }

    #[test]
    fn what_is_committed_loads_back_the_same() {
        let mut store = fresh();
        let user = User {
            id: Uuid::from_u128(99),
            name: "admin".into(),
            domain: "internal".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            service_key_sha256: Some("cd".repeat(32)),
        };
        let ops = vec![
            Op::InsertLabel(Label { index: 9, name: "teal".into(), color: "0x008080".into() }),
            Op::InsertDomain(Box::new(qube(1, "work"))),
            Op::SetGlobalProp { name: "default_qrexec_timeout".into(), value: Some("90".into()) },
            Op::PutUser(user.clone()),
        ];

        store.commit(&ops).expect("commit");
        let (_, domains, users) = snapshot(&store);

        assert_eq!(domains.iter().find(|d| d.name == "work"), Some(&qube(1, "work")));
        assert_eq!(users, [user]);
        let (app, _) = store.load(HOST).expect("load");
        assert_eq!(app.global_explicit("default_qrexec_timeout"), Some("90"));
        assert!(app.labels().any(|l| l.name == "teal" && l.index == 9));
    }

    /// One op that the store refuses undoes the ops before it in the same commit, and the store says why
    /// by meaning.
    #[test]
    fn a_failed_commit_changes_nothing() {
        let mut store = fresh();
        store.commit(&[Op::InsertDomain(Box::new(qube(1, "work")))]).expect("first");
        let before = snapshot(&store);

        let failed = store.commit(&[
            Op::InsertDomain(Box::new(qube(2, "other"))),
            Op::SetNotes { qid: 1, text: "changed".into() },
            Op::DeleteDomain { qid: 1 },
            // The same qid again: the key is taken.
            Op::InsertDomain(Box::new(qube(2, "again"))),
        ]);

        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        assert_eq!(snapshot(&store), before);
        store.commit(&[Op::InsertDomain(Box::new(qube(2, "other")))]).expect("the store still works");
    }

    #[test]
    fn a_fresh_store_is_initialized_by_its_first_commit() {
        let mut store = SqliteStore::open_in_memory().expect("store");
        assert!(!store.is_initialized().expect("fresh"));
        store.commit(&[]).expect("commit");
        assert!(store.is_initialized().expect("after"));
        assert_eq!(store.integrity_check().expect("check"), Vec::<String>::new());
    }

    /// The database and the files SQLite keeps beside it are the owner's only, whatever the umask of the
    /// process that creates them (the CLI's import runs with the user's).
    #[test]
    fn a_new_database_and_its_wal_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("corral.sqlite");

        let mut store = SqliteStore::open(&path, Durability::PowerLoss).expect("open");
        store.commit(&App::initial_ops("/var/lib/corral", "/var/lib/corral/vm-kernels")).expect("commit");

        for name in ["corral.sqlite", "corral.sqlite-wal", "corral.sqlite-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).expect(name).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("corral.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).expect("write");

        let opened = SqliteStore::open(&path, Durability::default());

        match opened {
            Err(StoreError::Open { source, .. }) => assert!(matches!(*source, StoreError::Corrupt(_)), "{source:?}"),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("opened garbage"),
        }
    }
}
