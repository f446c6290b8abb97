//! The whole state a daemon keeps, as text to compare before and after requests that must change nothing.

use std::path::Path;

/// Every table of the state database, rows in a fixed order, through a read-only connection: WAL lets it
/// read the last committed state while the daemon keeps running.
pub fn db_dump(db: &Path) -> String {
    use rusqlite::{types::Value, Connection, OpenFlags};
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .expect("open the state database read-only");
    let mut out = String::new();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("user_version");
    out += &format!("user_version {version}\n");
    let mut stmt = conn
        .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
        .expect("sqlite_master");
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("sqlite_master rows")
        .collect::<Result<_, _>>()
        .expect("sqlite_master row");
    for (ty, name, sql) in &objects {
        out += &format!("{ty} {name}: {sql}\n");
        if ty != "table" {
            continue;
        }
        let cols: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM pragma_table_info('{name}')"), [], |r| r.get(0))
            .expect("table_info");
        let order: Vec<String> = (1..=cols).map(|i| i.to_string()).collect();
        let mut stmt =
            conn.prepare(&format!("SELECT * FROM \"{name}\" ORDER BY {}", order.join(", "))).expect("select");
        let rows = stmt
            .query_map([], |r| (0..cols as usize).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>())
            .expect("rows");
        for row in rows {
            out += &format!("  {:?}\n", row.expect("row"));
        }
    }
    out
}
