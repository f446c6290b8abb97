//! Corral's durable state in SQLite. The model's `Op`s are written here one transaction per call; at
//! start the whole model is read back, and rows that no longer validate are skipped with a warning.

mod load;
pub mod qubes_xml;
mod schema;

use std::path::Path;

use corral_core::firewall::Rule;
use corral_core::{App, HostInfo, Op};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub use load::LoadWarning;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Cannot open state database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("State database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("State database has schema version {found}, this daemon knows up to {known}")]
    SchemaTooNew { found: i64, known: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How hard a commit pushes data to disk. Both survive a crash of the daemon (`kill -9`): the WAL is in
/// the kernel's page cache once `COMMIT` returns. `Full` also survives a power loss, at an fsync per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    #[default]
    ProcessCrash,
    PowerLoss,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        let conn =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Self::init(conn, durability)
    }

    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?, Durability::ProcessCrash)
    }

    fn init(conn: Connection, durability: Durability) -> Result<Store> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&conn)?;
        Ok(Store { conn })
    }

    /// True until the first model has been committed (a fresh state directory).
    pub fn is_initialized(&self) -> Result<bool> {
        let v: Option<String> =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'initialized'", [], |r| r.get(0)).optional()?;
        Ok(v.is_some())
    }

    /// Qube rows other than dom0's, whether they load or not.
    pub fn qube_rows(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM domains WHERE qid != 0", [], |r| r.get(0))?)
    }

    /// Whether the operator chose to run this store although it held no qubes beside existing images.
    pub fn empty_store_accepted(&self) -> Result<bool> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'empty_store_accepted'", [], |r| r.get(0))
            .optional()?;
        Ok(v.is_some())
    }

    pub fn accept_empty_store(&mut self) -> Result<()> {
        self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('empty_store_accepted', '1')", [])?;
        Ok(())
    }

    /// Reads the whole model. Invalid rows are skipped and reported, never fatal.
    pub fn load(&self, host: HostInfo) -> Result<(App, Vec<LoadWarning>)> {
        load::load(&self.conn, host)
    }

    /// Writes the ops in one transaction; nothing is written if any statement fails.
    pub fn commit(&mut self, ops: &[Op]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for op in ops {
            write_op(&tx, op)?;
        }
        tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('initialized', '1')", [])?;
        tx.commit()?;
        Ok(())
    }

    /// `PRAGMA integrity_check`'s answer (`ok` when healthy).
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
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
