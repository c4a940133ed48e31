//! A small catalog served over HTTP with axum: the service under test of prun's HTTP example.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub price_cents: u32,
}

/// The catalog: each server has its own, in memory.
type Catalog = Arc<Mutex<BTreeMap<String, Item>>>;

pub fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/items", get(list).post(add))
        .route("/items/{sku}", get(one))
        .with_state(Catalog::default())
}

async fn list(State(catalog): State<Catalog>) -> Json<Vec<Item>> {
    Json(catalog.lock().map(|c| c.values().cloned().collect()).unwrap_or_default())
}

async fn one(
    State(catalog): State<Catalog>,
    Path(sku): Path<String>,
) -> Result<Json<Item>, StatusCode> {
    let found = catalog.lock().ok().and_then(|c| c.get(&sku).cloned());
    found.map(Json).ok_or(StatusCode::NOT_FOUND)
}

async fn add(State(catalog): State<Catalog>, Json(item): Json<Item>) -> StatusCode {
    let Ok(mut catalog) = catalog.lock() else { return StatusCode::INTERNAL_SERVER_ERROR };
    if catalog.contains_key(&item.sku) {
        return StatusCode::CONFLICT;
    }
    catalog.insert(item.sku.clone(), item);
    StatusCode::CREATED
}

/// Serves the app on an already-bound listener until `stop` resolves, on a runtime of its own
/// (a current-thread one: the tests that start it need no async runtime themselves).
pub fn serve(
    listener: std::net::TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app())
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
    })
}
