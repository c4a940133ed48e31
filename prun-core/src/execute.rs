//! Runs attempts of tests in this process: fixtures, panics, `should_panic`, timeouts, and the
//! extra threads of a heavy test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::capture::{self, payload_text};
use crate::ctx::Ctx;
use crate::event::{Attempt, Event};
use crate::fixtures::scope::{RunScope, WorkerScope};
use crate::outcome::{Failure, Skip, counts_as_pass};
use crate::plan::PlannedTest;
use crate::registry::ShouldPanic;
use crate::scheduler::{Dispatch, Executor};

/// Runs the plan's tests on the thread the scheduler gives them, and reports to `events`.
pub(crate) struct InProcess {
    pub(crate) tests: Vec<PlannedTest>,
    pub(crate) run: Arc<RunScope>,
    pub(crate) events: Sender<Event>,
    pub(crate) retry: crate::config::RetryConfig,
}

impl Executor for InProcess {
    type Worker = Arc<WorkerScope>;
    type Report = Attempt;

    fn worker(&self, id: usize) -> Arc<WorkerScope> {
        Arc::new(WorkerScope::new(id))
    }

    fn execute(&self, worker: &Arc<WorkerScope>, dispatch: Dispatch) -> (bool, Attempt) {
        let test = &self.tests[dispatch.job];
        // A retry waits in its slot, holding its groups as the test would.
        std::thread::sleep(self.retry.wait_before(dispatch.attempt));
        let _ = self.events.send(Event::Started {
            name: test.name.clone(),
            attempt: dispatch.attempt,
            worker: worker.id,
        });
        let attempt = attempt(test, dispatch, &self.run, worker);
        (counts_as_pass(&attempt.result), attempt)
    }

    fn finished(&self, _dispatch: Dispatch, mut attempt: Attempt, will_retry: bool) {
        attempt.will_retry = will_retry;
        let _ = self.events.send(Event::Finished(attempt));
    }
}

/// Runs one attempt of `test` on this thread (or, with a timeout, on one of its own) and tears
/// down its fixtures. `dispatch.job` numbers the test within the run, for its namespace.
pub(crate) fn attempt(
    test: &PlannedTest,
    dispatch: Dispatch,
    run: &Arc<RunScope>,
    worker: &Arc<WorkerScope>,
) -> Attempt {
    let ctx = Arc::new(Ctx::for_test(
        test.name.clone(),
        dispatch.job,
        dispatch.attempt,
        run.clone(),
        worker.clone(),
    ));
    let started = Instant::now();
    let (result, ended) = match test.timeout {
        None => (run_guarded(test, dispatch.slots, &ctx), true),
        Some(limit) => run_with_timeout(test, dispatch.slots, &ctx, limit),
    };
    let duration = started.elapsed();
    ctx.finish(counts_as_pass(&result), ended);
    Attempt {
        name: test.name.clone(),
        attempt: dispatch.attempt,
        worker: worker.id,
        result,
        duration,
        output: ctx.capture.take(),
        will_retry: false,
    }
}

/// Runs the test on its own thread and waits at most `limit`. A test past it is reported then;
/// its thread cannot be killed, so it is left running and the worker moves on.
fn run_with_timeout(
    test: &PlannedTest,
    slots: u32,
    ctx: &Arc<Ctx>,
    limit: Duration,
) -> (Result<(), Failure>, bool) {
    let (done, result) = mpsc::channel();
    let spawned = {
        let ctx = ctx.clone();
        let (def, name) = (test.def, test.name.clone());
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            let _ = done.send(guarded(def.run, def.should_panic, slots, &name, &ctx));
        })
    };
    if let Err(err) = spawned {
        let error = format!("cannot start a thread for the test: {err}");
        return (Err(Failure::Setup { fixture: "timeout thread".into(), error }), true);
    }
    match result.recv_timeout(limit) {
        Ok(result) => (result, true),
        Err(RecvTimeoutError::Timeout) => (Err(Failure::TimedOut(limit)), false),
        Err(RecvTimeoutError::Disconnected) => (Err(Failure::Panicked), true),
    }
}

fn run_guarded(test: &PlannedTest, slots: u32, ctx: &Ctx) -> Result<(), Failure> {
    guarded(test.def.run, test.def.should_panic, slots, &test.name, ctx)
}

/// One call of the test function, its panic caught and judged against `should_panic`.
fn guarded(
    run: fn(&Ctx) -> Result<(), Failure>,
    should_panic: ShouldPanic,
    slots: u32,
    name: &Arc<str>,
    ctx: &Ctx,
) -> Result<(), Failure> {
    let _route = capture::route(ctx.capture.clone(), name.clone());
    let caught = if slots > 1 {
        in_own_pool(slots, name, ctx, || catch_unwind(AssertUnwindSafe(|| run(ctx))))
    } else {
        catch_unwind(AssertUnwindSafe(|| run(ctx)))
    };
    match (caught, should_panic) {
        (Err(payload), _) if payload.is::<Skip>() => {
            let reason = payload.downcast::<Skip>().map(|skip| skip.0).unwrap_or_default();
            Err(Failure::Skipped(reason))
        }
        (Ok(Err(failure)), _) => Err(failure),
        (Ok(Ok(())), ShouldPanic::No) => Ok(()),
        (Ok(Ok(())), _) => Err(Failure::DidNotPanic),
        (Err(_), ShouldPanic::No) => Err(Failure::Panicked),
        (Err(_), ShouldPanic::Yes) => Ok(()),
        (Err(payload), ShouldPanic::WithMessage(expected)) => {
            if payload_text(&*payload).contains(expected) {
                Ok(())
            } else {
                Err(Failure::WrongPanic { expected: expected.to_owned() })
            }
        }
    }
}

/// A heavy test (`threads = N`) runs inside a rayon pool of its own N threads, so its
/// `par_iter` gets the slots it reserved and no more; their panics are captured as its own.
fn in_own_pool<R: Send>(
    slots: u32,
    name: &Arc<str>,
    ctx: &Ctx,
    body: impl FnOnce() -> R + Send,
) -> R {
    let (capture, test) = (ctx.capture.clone(), name.clone());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(slots as usize)
        .thread_name(move |i| format!("prun-heavy-{i}"))
        .start_handler(move |_| std::mem::forget(capture::route(capture.clone(), test.clone())))
        .build();
    match pool {
        Ok(pool) => pool.install(body),
        // Without a pool of its own, the test still runs, on the worker's thread.
        Err(_) => body(),
    }
}
