//! `&prun::Ctx`: what a test knows about itself and the run it is part of.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::capture::Capture;
use crate::fixtures::scope::{RunScope, WorkerScope};

/// Handed to tests that take `&prun::Ctx`, and to fixtures while they set up.
pub struct Ctx {
    name: Arc<str>,
    attempt: u32,
    namespace: String,
    pub(crate) run: Arc<RunScope>,
    pub(crate) worker: Arc<WorkerScope>,
    pub(crate) capture: Arc<Capture>,
    /// Temp dirs to remove after a pass, and to print after a failure.
    pub(crate) temp_dirs: Mutex<Vec<PathBuf>>,
    /// Teardowns registered by test-scoped fixtures, run once the test has ended.
    teardowns: Mutex<Vec<Teardown>>,
}

type Teardown = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("test_name", &self.name)
            .field("attempt", &self.attempt)
            .field("worker_id", &self.worker.id)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn for_test(
        name: Arc<str>,
        index: usize,
        attempt: u32,
        run: Arc<RunScope>,
        worker: Arc<WorkerScope>,
    ) -> Ctx {
        let namespace = format!("prun_{}_t{index}_{attempt}", run.id);
        Ctx::new(name, attempt, namespace, run, worker, Arc::default())
    }

    /// The context a worker-scoped fixture sets up in: its namespace names the worker.
    pub(crate) fn for_worker(
        run: Arc<RunScope>,
        worker: Arc<WorkerScope>,
        capture: Arc<Capture>,
    ) -> Ctx {
        let namespace = format!("prun_{}_{}", run.id, worker.namespace);
        Ctx::new("(worker fixture)".into(), 1, namespace, run, worker, capture)
    }

    /// The context a run-scoped fixture sets up in.
    pub(crate) fn for_run(
        run: Arc<RunScope>,
        worker: Arc<WorkerScope>,
        capture: Arc<Capture>,
    ) -> Ctx {
        let namespace = format!("prun_{}", run.id);
        Ctx::new("(run fixture)".into(), 1, namespace, run, worker, capture)
    }

    fn new(
        name: Arc<str>,
        attempt: u32,
        namespace: String,
        run: Arc<RunScope>,
        worker: Arc<WorkerScope>,
        capture: Arc<Capture>,
    ) -> Ctx {
        Ctx {
            name,
            attempt,
            namespace,
            run,
            worker,
            capture,
            temp_dirs: Mutex::default(),
            teardowns: Mutex::default(),
        }
    }

    /// The test's full name, as `--list` prints it (`module::test`).
    pub fn test_name(&self) -> &str {
        &self.name
    }

    /// 1 for the first run of the test, 2 for its first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Which worker runs the test: `0..threads`. Tests that run at the same time never share it.
    pub fn worker_id(&self) -> usize {
        self.worker.id
    }

    /// An id for the whole run, the same for every test of it.
    pub fn run_id(&self) -> &str {
        &self.run.id
    }

    /// A name no other test (or attempt) of any run shares: lowercase letters, digits and `_`,
    /// so it can name a database, a schema, a queue or a key prefix as it is.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A worker- or run-scoped fixture, from another fixture's `setup`: the value the tests of
    /// its scope share (set up now if no test took it yet). A test-scoped fixture built on a
    /// shared one (a transaction on the worker's database, say) gets it here.
    pub fn shared<T: crate::Fixture>(&self) -> Result<Arc<T>, crate::BoxError> {
        crate::fixtures::shared::<T>(self).map_err(Into::into)
    }

    /// Adds a line to the test's log, shown with its result when it fails (and with
    /// `--show-output` when it passes). Unlike `println!`, lines never mix with other tests'.
    pub fn log(&self, line: impl Display) {
        self.capture.push_line(&line.to_string());
    }

    /// Runs `teardown` after the test has ended (passed or failed), for fixtures that must undo
    /// something once the test has given back its value. Not run for a test that timed out: it
    /// may still be using what the fixture made.
    pub fn on_teardown(&self, teardown: impl FnOnce() + Send + 'static) {
        self.teardowns.lock().push(Box::new(teardown));
    }

    /// Tears down what the test's fixtures made, last made first; says which temp dirs were
    /// kept because the test did not pass.
    pub(crate) fn finish(&self, passed: bool, ended: bool) {
        if ended {
            let teardowns = std::mem::take(&mut *self.teardowns.lock());
            for teardown in teardowns.into_iter().rev() {
                teardown();
            }
        }
        for dir in self.temp_dirs.lock().drain(..) {
            if passed {
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                self.log(format_args!("temp dir kept: {}", dir.display()));
            }
        }
    }
}
