//! The schema and its versions. A newer database than this daemon knows is refused rather than guessed at.

use rusqlite::Connection;

use crate::{Result, StoreError};

const VERSION: i64 = 4;

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

const V4: &str = "
ALTER TABLE volumes ADD COLUMN bootable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN preallocated INTEGER NOT NULL DEFAULT 0;
";

pub fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        return Err(StoreError::SchemaTooNew { found: version, known: VERSION });
    }
    if version < 1 {
        conn.execute_batch(&format!("BEGIN; {V1} PRAGMA user_version = 1; COMMIT;"))?;
    }
    if version < 2 {
        conn.execute_batch(&format!("BEGIN; {V2} PRAGMA user_version = 2; COMMIT;"))?;
    }
    if version < 3 {
        conn.execute_batch(&format!("BEGIN; {V3} PRAGMA user_version = 3; COMMIT;"))?;
    }
    if version < 4 {
        conn.execute_batch(&format!("BEGIN; {V4} PRAGMA user_version = 4; COMMIT;"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use corral_core::HostInfo;

    use super::*;
    use crate::{Durability, Store};

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

        let mut store = Store::open(&path, Durability::default()).expect("migrated");
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
}
