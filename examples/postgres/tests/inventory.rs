//! The inventory's tests against a real PostgreSQL server, run by prun:
//! `cargo test -p pg-inventory`, or `cargo prun -p pg-inventory`.
//!
//! - Each worker gets a database of its own, named after the run and the worker, with the
//!   migrations applied once ([`WorkerDb`]); a worker runs one test at a time, so its tests need
//!   no group and still run in parallel with the other workers'.
//! - Each test runs in a transaction on it, rolled back when the test ends, pass or fail
//!   ([`Tx`]): every test starts from the migrated, empty schema.
//! - Tests that need a whole database to themselves (a schema change, a count of every row)
//!   share one database per process ([`SharedDb`]) and the `whole_db` group: never two at once.
//!
//! The server is `PRUN_PG_URL` (a libpq connection string), by default
//! `host=127.0.0.1 port=5432 user=postgres`. With none reachable, every test here is skipped
//! with one line saying how to start one. Databases a run creates are dropped when it ends.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pg_inventory::{add_item, count_items, migrate, reserve, stock};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use prun::{BoxError, Ctx, Fixture, Scope};

/// The server, as its administrator: it creates and drops the run's databases.
struct Server {
    config: Config,
    admin: Mutex<Client>,
}

const DEFAULT_URL: &str = "host=127.0.0.1 port=5432 user=postgres";

impl Fixture for Server {
    const SCOPE: Scope = Scope::Run;
    fn setup(_: &Ctx) -> Result<Self, BoxError> {
        let url = std::env::var("PRUN_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut config: Config = url.parse()?;
        config.connect_timeout(Duration::from_secs(3));
        match config.connect(NoTls) {
            Ok(admin) => Ok(Server { config, admin: Mutex::new(admin) }),
            Err(err) => prun::skip(format!(
                "no PostgreSQL server at `{url}` ({err}); start one (see examples/postgres/README.md) \
                 or point PRUN_PG_URL at one"
            )),
        }
    }
}

impl Server {
    /// A new, migrated database, and a connection to it.
    fn create_database(&self, name: &str) -> Result<Client, BoxError> {
        self.admin
            .lock()
            .map_err(|_| "poisoned")?
            .batch_execute(&format!("CREATE DATABASE {name}"))?;
        let mut client = self.config.clone().dbname(name).connect(NoTls)?;
        migrate(&mut client)?;
        Ok(client)
    }

    fn drop_database(&self, name: &str) {
        if let Ok(mut admin) = self.admin.lock() {
            // FORCE: a connection a timed-out test left open does not keep it alive.
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A database of the run's, created and migrated on the server, dropped with this value.
struct Database {
    server: Arc<Server>,
    name: String,
    client: Mutex<Client>,
}

impl Database {
    fn create(ctx: &Ctx, name: String) -> Result<Database, BoxError> {
        let server = ctx.shared::<Server>()?;
        let client = Mutex::new(server.create_database(&name)?);
        Ok(Database { server, name, client })
    }

    fn client(&self) -> MutexGuard<'_, Client> {
        // Poisoned only by a test that panicked while holding it; the connection still works.
        self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.server.drop_database(&self.name);
    }
}

/// This worker's database.
struct WorkerDb(Database);

impl Fixture for WorkerDb {
    const SCOPE: Scope = Scope::Worker;
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        // The namespace names this worker of this run (`prun_RUNID_w3`): a valid identifier
        // that no other worker, and no other run, uses.
        Database::create(ctx, ctx.namespace().to_owned()).map(WorkerDb)
    }
}

/// The test's own transaction on its worker's database, rolled back when the test ends.
struct Tx {
    db: Arc<WorkerDb>,
}

impl Fixture for Tx {
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        let db = ctx.shared::<WorkerDb>()?;
        db.0.client().batch_execute("BEGIN")?;
        Ok(Tx { db })
    }
}

impl Tx {
    fn client(&self) -> MutexGuard<'_, Client> {
        self.db.0.client()
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let _ = self.client().batch_execute("ROLLBACK");
    }
}

/// A database for the tests that need one whole: one per process (a `cargo prun` worker, or
/// the whole run under `cargo test`), dropped with it.
struct SharedDb(Database);

impl Fixture for SharedDb {
    const SCOPE: Scope = Scope::Run;
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        let name = format!("{}_shared_{}", ctx.namespace(), std::process::id());
        Database::create(ctx, name).map(SharedDb)
    }
}

impl SharedDb {
    fn client(&self) -> MutexGuard<'_, Client> {
        self.0.client()
    }
}

#[prun::test]
fn adds_and_reads_an_item(tx: &Tx) -> Result<(), BoxError> {
    let mut db = tx.client();
    add_item(&mut *db, "pen", "Ballpoint pen", 12)?;
    assert_eq!(stock(&mut *db, "pen")?, Some(12));
    assert_eq!(stock(&mut *db, "ink")?, None);
    Ok(())
}

#[prun::test]
fn reserving_takes_stock(tx: &Tx) -> Result<(), BoxError> {
    let mut db = tx.client();
    add_item(&mut *db, "pen", "Ballpoint pen", 12)?;
    assert!(reserve(&mut *db, "pen", 5)?);
    assert_eq!(stock(&mut *db, "pen")?, Some(7));
    Ok(())
}

#[prun::test]
fn cannot_reserve_more_than_in_stock(tx: &Tx) -> Result<(), BoxError> {
    let mut db = tx.client();
    add_item(&mut *db, "pen", "Ballpoint pen", 2)?;
    assert!(!reserve(&mut *db, "pen", 3)?);
    assert_eq!(stock(&mut *db, "pen")?, Some(2));
    Ok(())
}

#[prun::test]
fn quantities_cannot_go_negative(tx: &Tx) {
    let err = add_item(&mut *tx.client(), "pen", "Ballpoint pen", -1).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION), "{err:?}");
}

// Every test sees the empty schema, whatever ran before it in its worker: the transactions of
// the tests above were rolled back. (Each of these adds the same item: without the rollback,
// the second to run on a worker would hit the primary key.)
macro_rules! starts_empty {
    ($($name:ident),*) => {$(
        #[prun::test]
        fn $name(tx: &Tx) -> Result<(), BoxError> {
            let mut db = tx.client();
            assert_eq!(count_items(&mut *db)?, 0);
            add_item(&mut *db, "pen", "Ballpoint pen", 1)?;
            Ok(())
        }
    )*};
}
starts_empty!(starts_empty_1, starts_empty_2, starts_empty_3, starts_empty_4, starts_empty_5);

#[prun::test]
fn each_worker_has_a_database_of_its_own(tx: &Tx, ctx: &Ctx) -> Result<(), BoxError> {
    let name: String = tx.client().query_one("SELECT current_database()", &[])?.get(0);
    assert!(name.starts_with(&format!("prun_{}_", ctx.run_id())), "{name}");
    Ok(())
}

#[prun::test(category = "integration", group = "whole_db")]
fn adds_a_column(shared: &SharedDb) -> Result<(), BoxError> {
    let mut db = shared.client();
    db.batch_execute("ALTER TABLE items ADD COLUMN price_cents integer NOT NULL DEFAULT 0")?;
    add_item(&mut *db, "pen", "Ballpoint pen", 1)?;
    let price: i32 = db.query_one("SELECT price_cents FROM items WHERE sku = 'pen'", &[])?.get(0);
    assert_eq!(price, 0);
    // Back as it was, for the next test of the group.
    db.batch_execute("DELETE FROM items; ALTER TABLE items DROP COLUMN price_cents")?;
    Ok(())
}

#[prun::test(category = "integration", group = "whole_db")]
fn counts_every_item(shared: &SharedDb) -> Result<(), BoxError> {
    let mut db = shared.client();
    db.batch_execute("TRUNCATE items CASCADE")?;
    for sku in ["pen", "ink", "pad"] {
        add_item(&mut *db, sku, sku, 1)?;
    }
    // Without the group, `adds_a_column` could add or delete rows in between.
    assert_eq!(count_items(&mut *db)?, 3);
    db.batch_execute("TRUNCATE items CASCADE")?;
    Ok(())
}

/// Fails when `PG_INVENTORY_FAIL` is set: prun's end-to-end suite uses it to check that a failed
/// run still drops every database it made.
#[prun::test]
fn fails_when_asked(tx: &Tx) -> Result<(), BoxError> {
    add_item(&mut *tx.client(), "pen", "Ballpoint pen", 1)?;
    assert!(std::env::var_os("PG_INVENTORY_FAIL").is_none(), "asked to fail");
    Ok(())
}

prun::main!();
