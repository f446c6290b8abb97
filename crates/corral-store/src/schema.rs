//! The schema and its versions. A newer database than this daemon knows is refused rather than guessed at.

use rusqlite::Connection;

use crate::{Result, StoreError};

const VERSION: i64 = 2;

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
    Ok(())
}
