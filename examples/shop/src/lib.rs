//! A tiny shop: customers in SQLite, a line-protocol price server on TCP, and CSV export.
//! Just enough real I/O for its tests to show what prun's groups and fixtures are for.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Customers, in one SQLite database file.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) the database at `path` and applies the schema.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        )?;
        Ok(Store { conn })
    }

    pub fn add_customer(&self, name: &str) -> rusqlite::Result<i64> {
        self.conn.execute("INSERT INTO customers (name) VALUES (?1)", [name])?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn count(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("SELECT COUNT(*) FROM customers", [], |row| row.get(0))
    }

    pub fn clear(&self) -> rusqlite::Result<()> {
        self.conn.execute("DELETE FROM customers", []).map(drop)
    }

    pub fn names(&self) -> rusqlite::Result<Vec<String>> {
        let mut query = self.conn.prepare("SELECT name FROM customers ORDER BY id")?;
        let names = query.query_map([], |row| row.get(0))?;
        names.collect()
    }
}

/// The price of an item in cents, or `None` for an item the shop does not sell.
pub fn price(item: &str) -> Option<u32> {
    match item {
        "apple" => Some(40),
        "bread" => Some(250),
        "coffee" => Some(899),
        _ => None,
    }
}

/// Serves `PRICE <item>` lines on `listener` until the client hangs up; answers with the
/// price in cents or `UNKNOWN`. Handles one client, then returns.
pub fn serve_one(listener: &TcpListener) -> std::io::Result<()> {
    let (stream, _) = listener.accept()?;
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let answer = match line.strip_prefix("PRICE ").and_then(price) {
            Some(cents) => cents.to_string(),
            None => "UNKNOWN".to_owned(),
        };
        writeln!(writer, "{answer}")?;
    }
    Ok(())
}

/// Writes the customers to `dir/customers.csv` and returns its path.
pub fn export_csv(store: &Store, dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("customers.csv");
    let names = store.names().map_err(std::io::Error::other)?;
    let mut out = String::from("name\n");
    for name in names {
        out.push_str(&name);
        out.push('\n');
    }
    std::fs::write(&path, out)?;
    Ok(path)
}
