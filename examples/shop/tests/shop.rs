//! The shop's tests, run by prun: `cargo test -p shop`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;

use prun::{BoxError, Ctx, Fixture, Port, Scope, TempDir};
use shop::{Store, export_csv, price, serve_one};

/// One database for the whole run, shared by every test that takes it. Tests that count all its
/// rows would see each other's writes, so they share the `db` group: never two at once.
struct SharedDb(PathBuf);

impl Fixture for SharedDb {
    const SCOPE: Scope = Scope::Run;
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        Ok(SharedDb(std::env::temp_dir().join(format!("{}.sqlite", ctx.namespace()))))
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One database per worker: a worker runs one test at a time, so tests using it need no group
/// and still run in parallel with each other. (Shared fixtures must be `Sync`; SQLite's
/// connection is not, hence the mutex, which is never contended.)
struct WorkerDb {
    store: Mutex<Store>,
    path: PathBuf,
}

impl Fixture for WorkerDb {
    const SCOPE: Scope = Scope::Worker;
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        // The namespace names this worker of this run: no other worker opens the same file.
        let path = std::env::temp_dir().join(format!("{}.sqlite", ctx.namespace()));
        Ok(WorkerDb { store: Mutex::new(Store::open(&path)?), path })
    }
}

impl Drop for WorkerDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[prun::test]
fn prices_known_items() {
    assert_eq!(price("apple"), Some(40));
    assert_eq!(price("coffee"), Some(899));
}

#[prun::test]
fn unknown_items_have_no_price() {
    assert_eq!(price("caviar"), None);
}

#[prun::test(category = "integration", group = "db")]
fn adds_customers_to_the_shared_db(db: &SharedDb) -> Result<(), BoxError> {
    let store = Store::open(&db.0)?;
    store.clear()?;
    store.add_customer("ada")?;
    store.add_customer("grace")?;
    // Without the group, another test could clear or add rows in between.
    assert_eq!(store.count()?, 2);
    Ok(())
}

#[prun::test(category = "integration", group = "db")]
fn clears_the_shared_db(db: &SharedDb) -> Result<(), BoxError> {
    let store = Store::open(&db.0)?;
    store.add_customer("linus")?;
    store.clear()?;
    assert_eq!(store.count()?, 0);
    Ok(())
}

#[prun::test(category = "integration")]
fn each_worker_has_its_own_db(db: &WorkerDb, ctx: &Ctx) -> Result<(), BoxError> {
    let store = db.store.lock().map_err(|_| "a test panicked holding the worker db")?;
    store.clear()?;
    store.add_customer(ctx.test_name())?;
    assert_eq!(store.count()?, 1);
    ctx.log(format_args!("worker {} uses {}", ctx.worker_id(), db.path.display()));
    Ok(())
}

#[prun::test(category = "integration")]
fn exports_customers_to_csv(db: &WorkerDb, dir: TempDir) -> Result<(), BoxError> {
    let store = db.store.lock().map_err(|_| "a test panicked holding the worker db")?;
    store.clear()?;
    store.add_customer("ada")?;
    let path = export_csv(&store, &dir)?;
    assert_eq!(std::fs::read_to_string(path)?, "name\nada\n");
    Ok(())
}

#[prun::test(category = "integration", timeout = "30s")]
fn price_server_answers_on_its_port(port: Port) -> Result<(), BoxError> {
    let listener = TcpListener::bind(port.addr())?;
    let server = std::thread::spawn(move || serve_one(&listener));
    let mut client = TcpStream::connect(port.addr())?;
    writeln!(client, "PRICE bread")?;
    writeln!(client, "PRICE caviar")?;
    client.shutdown(std::net::Shutdown::Write)?;
    let answers: Vec<String> = BufReader::new(client).lines().collect::<Result<_, _>>()?;
    assert_eq!(answers, ["250", "UNKNOWN"]);
    server.join().expect("the server thread panicked")?;
    Ok(())
}

#[prun::test(category = "integration", timeout = "30s")]
fn price_server_on_a_bound_listener(listener: prun::Listener) -> Result<(), BoxError> {
    let addr = listener.addr();
    let server = std::thread::spawn(move || serve_one(&listener));
    let mut client = TcpStream::connect(addr)?;
    writeln!(client, "PRICE apple")?;
    client.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    BufReader::new(client).read_line(&mut answer)?;
    assert_eq!(answer, "40\n");
    server.join().expect("the server thread panicked")?;
    Ok(())
}

#[prun::test(category = "slow", threads = 2)]
fn restocks_a_thousand_customers(dir: TempDir) -> Result<(), BoxError> {
    let store = Store::open(&dir.join("bulk.sqlite"))?;
    for i in 0..1000 {
        store.add_customer(&format!("customer-{i}"))?;
    }
    assert_eq!(store.count()?, 1000);
    Ok(())
}

#[prun::test(should_panic(expected = "no price"))]
fn refuses_to_sell_what_it_does_not_stock() {
    price("caviar").expect("no price for caviar");
}

#[prun::test(ignore = "needs the supplier's sandbox")]
fn orders_from_the_supplier() {}

prun::main!();
