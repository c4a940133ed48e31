//! A prun binary as `cargo prun`'s worker process: the tests it is sent, one at a time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use crate::execute;
use crate::fixtures::scope::{RunScope, WorkerScope};
use crate::outcome::Outcome;
use crate::plan::PlannedTest;
use crate::protocol::{self, Catalog, Request, Response, VERSION, output_end};
use crate::registry::{self, TestDef};
use crate::scheduler::{Dispatch, Job};

/// Prints the binary's catalog: the handshake's answer.
pub(crate) fn print_catalog() -> i32 {
    let tests = registry::declared().into_iter().map(TestDef::catalog).collect();
    let catalog = Catalog { prun_catalog: VERSION, tests };
    println!("{}", serde_json::to_string(&catalog).expect("a catalog serializes"));
    crate::exit::OK
}

/// Why a worker stopped serving its driver.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("cannot reach the driver at {socket}: {source}")]
    Connect { socket: String, source: std::io::Error },
    #[error("cannot answer the driver: {0}")]
    Reply(std::io::Error),
    #[error("bad request {line:?}: {source}")]
    BadRequest { line: String, source: serde_json::Error },
}

/// Serves requests from the driver on `socket` until it hangs up.
pub(crate) fn serve(socket: &str) -> Result<i32, ServeError> {
    let stream = UnixStream::connect(socket)
        .map_err(|source| ServeError::Connect { socket: socket.to_owned(), source })?;
    let mut replies = stream.try_clone().map_err(ServeError::Reply)?;
    let tests: HashMap<String, &'static TestDef> =
        registry::declared().into_iter().map(|def| (def.full_name(), def)).collect();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let worker_id = env(protocol::WORKER_ID_ENV).and_then(|id| id.parse().ok()).unwrap_or(0);
    let run_id = protocol::given_run_id().unwrap_or_else(crate::harness::run_id);
    // Several worker processes share the run: each gets a temp root of its own.
    let run =
        Arc::new(RunScope::new(run_id).with_temp_root_name(format!("prun-{}", std::process::id())));
    let mut worker = WorkerScope::new(worker_id);
    if let Some(namespace) = env(protocol::WORKER_NAMESPACE_ENV) {
        worker.namespace = namespace;
    }
    let worker = Arc::new(worker);
    // Each test is measured from the end of the one before it (the worker waits between them,
    // using no CPU); one that ends within a millisecond is not measured on its own, and counts
    // as a core for as long as it ran against the next measurement.
    let mut meter = crate::usage::Meter::of_self();
    let mut unmeasured_ms = 0.0;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let request: Request = serde_json::from_str(&line)
            .map_err(|source| ServeError::BadRequest { line: line.clone(), source })?;
        let mut response = match tests.get(&request.name) {
            Some(def) => run_one(def, &request, &run, &worker),
            None => Response {
                seq: request.seq,
                name: request.name.clone(),
                outcome: Outcome::Failed { reason: "no such test in this binary".to_owned() },
                captured: String::new(),
                duration_ms: 0.0,
                usage: None,
            },
        };
        if response.duration_ms >= 1.0 {
            response.usage = meter.lap().map(|used| crate::usage::Usage {
                cpu_ms: used.cpu_ms.saturating_sub(unmeasured_ms as u64),
                ..used
            });
            unmeasured_ms = 0.0;
        } else {
            unmeasured_ms += response.duration_ms;
        }
        // The end marks go out before the response, so the driver has all the output when the
        // response arrives.
        let end = output_end(&request);
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "\n{end}");
        let _ = stdout.flush();
        drop(stdout);
        eprintln!("\n{end}");
        let reply = serde_json::to_string(&response).expect("a response serializes");
        if writeln!(replies, "{reply}").and_then(|()| replies.flush()).is_err() {
            break;
        }
    }
    run.finish();
    Ok(crate::exit::OK)
}

fn run_one(
    def: &'static TestDef,
    request: &Request,
    run: &Arc<RunScope>,
    worker: &Arc<WorkerScope>,
) -> Response {
    // The driver enforces timeouts (it can kill this process) and decides retries.
    let test = PlannedTest {
        def,
        name: request.name.as_str().into(),
        timeout: None,
        job: Job { slots: request.slots, ..Job::default() },
    };
    let dispatch = Dispatch {
        job: request.index,
        attempt: request.attempt,
        slots: request.slots.max(1),
        group_wait: std::time::Duration::ZERO,
        loaded: false,
        lane: 0,
    };
    let attempt = execute::attempt(&test, dispatch, run, worker);
    Response {
        seq: request.seq,
        name: request.name.clone(),
        outcome: Outcome::from(&attempt.result),
        captured: attempt.output,
        duration_ms: attempt.duration.as_secs_f64() * 1000.0,
        usage: None,
    }
}
