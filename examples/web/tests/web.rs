//! The catalog service's tests: each test starts a real axum server of its own on a listener
//! prun bound for it (`prun::Listener`: a loopback port no other test of the run holds), and
//! talks HTTP to it. Many run at once; none shares a port or a catalog.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use prun::{BoxError, Ctx, Fixture, Listener};
use web_catalog::Item;

/// A server for one test: started on the test's own listener, stopped when the test ends.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Fixture for Server {
    fn setup(ctx: &Ctx) -> Result<Self, BoxError> {
        // Bound before the server starts, so a request can never race its start.
        let listener = Listener::setup(ctx)?;
        let addr = listener.addr();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || web_catalog::serve(listener.into_std(), stopped));
        Ok(Server { addr, stop: Some(stop), thread: Some(thread) })
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP client that reports 4xx and 5xx as statuses, not errors.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn pen() -> Item {
    Item { sku: "pen".into(), name: "Ballpoint pen".into(), price_cents: 150 }
}

fn post(server: &Server, item: &Item) -> Result<u16, BoxError> {
    let body = format!(
        r#"{{"sku":"{}","name":"{}","price_cents":{}}}"#,
        item.sku, item.name, item.price_cents
    );
    let response = client()
        .post(server.url("/items"))
        .header("content-type", "application/json")
        .send(body)?;
    Ok(response.status().as_u16())
}

#[prun::test(category = "integration")]
fn answers_health_checks(server: Server) -> Result<(), BoxError> {
    assert!(server.addr.ip().is_loopback(), "prun's listeners are on loopback only");
    let mut response = client().get(server.url("/health")).call()?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.body_mut().read_to_string()?, "ok");
    Ok(())
}

#[prun::test(category = "integration")]
fn adds_an_item_and_serves_it(server: Server) -> Result<(), BoxError> {
    assert_eq!(post(&server, &pen())?, 201);
    let mut response = client().get(server.url("/items/pen")).call()?;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body_mut().read_to_string()?;
    assert!(body.contains(r#""price_cents":150"#), "{body}");
    Ok(())
}

#[prun::test(category = "integration")]
fn refuses_a_duplicate(server: Server) -> Result<(), BoxError> {
    assert_eq!(post(&server, &pen())?, 201);
    assert_eq!(post(&server, &pen())?, 409);
    Ok(())
}

#[prun::test(category = "integration")]
fn unknown_items_are_not_found(server: Server) -> Result<(), BoxError> {
    let response = client().get(server.url("/items/caviar")).call()?;
    assert_eq!(response.status().as_u16(), 404);
    Ok(())
}

// Many servers at once, each on its own port with its own catalog: every one of these adds the
// same item and must get 201 (a shared port or catalog would give 409, or a refused connection).
macro_rules! servers {
    ($($name:ident),*) => {$(
        #[prun::test(category = "integration")]
        fn $name(server: Server) -> Result<(), BoxError> {
            assert_eq!(post(&server, &pen())?, 201);
            let mut listed = client().get(server.url("/items")).call()?;
            assert_eq!(listed.body_mut().read_to_string()?.matches("\"sku\"").count(), 1);
            Ok(())
        }
    )*};
}
servers!(
    server_01, server_02, server_03, server_04, server_05, server_06, server_07, server_08,
    server_09, server_10, server_11, server_12, server_13, server_14, server_15, server_16,
    server_17, server_18, server_19, server_20, server_21, server_22, server_23, server_24
);

prun::main!();
