//! Execute: runs each dispatched job under the one global schedule, the way the plan chose for
//! it (`plan::Runner`, one [`Way`] each): a prun binary's tests in its worker process for the
//! lane, kept for the whole run (`pooled`); a plain binary's in libtest batches (`batched`); a
//! test of its own in a process of its own (`own_process`); and the doctests' job. A process
//! that dies or a test past its timeout costs that test only: it is reported with what
//! happened, and the lane gets a fresh worker.

mod batched;
mod children;
mod libtest_batch;
mod libtest_process;
mod libtest_select;
pub(crate) mod output;
mod own_process;
mod pooled;
mod ports;
mod status;
mod stop;
mod worker_process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prun::scheduler::{Dispatch, Executor};
use prun::usage::Usage;

use crate::discover::{Binary, Kind};
use crate::event::{Event, Finished, Outcome};
use crate::plan::{PlannedJob, PlannedTest, Runner};
use children::Children;
use output::Printed;
use worker_process::{Launch, WorkerProcess};

pub(crate) struct ProcessExecutor {
    pub(crate) binaries: Vec<Binary>,
    pub(crate) tests: Vec<PlannedTest>,
    /// What the dispatcher's jobs are: one test, or a batch, and how each runs.
    pub(crate) jobs: Vec<PlannedJob>,
    pub(crate) settings: Settings,
    /// Taken (closed) when the schedule is over, which ends the reporters' loop.
    events: Mutex<Option<Sender<Event>>>,
    pub(crate) started: Instant,
    /// Fail-fast and interrupts: when no more tests start.
    pub(crate) stop: stop::Stop,
    /// Pooled worker processes by (binary, slot), each with its process number.
    workers: Mutex<HashMap<(usize, usize), (WorkerProcess, u64)>>,
    children: Arc<Children>,
    /// Numbers the test processes, so that the tests that shared one are known.
    processes: AtomicU64,
    /// Every attempt that ran: which tests were beside a failure, and before it in its process.
    spans: Mutex<Vec<Span>>,
    /// Final failures, to be rerun alone when the schedule is over.
    failed: Mutex<Vec<Span>>,
    /// Tests already seen failing alone: no rerun for them.
    failed_alone: Mutex<std::collections::HashSet<usize>>,
    /// Each binary's every test name, when a batch of it first needs them (`libtest_select`).
    universes: Vec<std::sync::OnceLock<libtest_select::Universe>>,
    /// The run's loopback ports, held for as long as it runs.
    ports: ports::PortBand,
}

/// How the executor runs tests, decided once by the run (or by `cargo prun bisect`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The run's private directory (mode 0700): sockets and test temp dirs live in it.
    pub(crate) run_dir: PathBuf,
    pub(crate) run_id: String,
    /// What the command line passes every test binary (after `--`).
    pub(crate) harness_args: Vec<String>,
    /// `LD_LIBRARY_PATH` for test processes, as cargo test sets it.
    pub(crate) dylib_path: std::ffi::OsString,
    /// Start no more tests after this many failures; `None`: run them all.
    pub(crate) max_fail: Option<usize>,
    /// Keep what passing tests printed (`--no-capture`); otherwise only failures keep output.
    pub(crate) keep_passing_output: bool,
    /// How retries wait before they start.
    pub(crate) retry: prun::config::RetryConfig,
    /// How long a test's output may stay open after its process ended, and whether a leak fails.
    pub(crate) leak_timeout: prun::config::LeakTimeout,
    /// Tests whose leak timeout is their own (nextest.toml's overrides), by `BINARY NAME`.
    pub(crate) leak_timeouts: HashMap<String, prun::config::LeakTimeout>,
    /// A batch's test is announced (`Event::Started`) once it has run this long.
    pub(crate) notice_after: Duration,
    /// How to run the doctests' job, when the plan has one.
    pub(crate) doctests: Option<Doctests>,
}

impl Settings {
    /// Everything as `cargo prun` does it by default, in the run's directory.
    pub(crate) fn new(
        run_dir: &crate::run_dir::RunDir,
        dylib_path: std::ffi::OsString,
    ) -> Settings {
        Settings {
            run_dir: run_dir.path().to_owned(),
            run_id: run_dir.id.clone(),
            harness_args: Vec::new(),
            dylib_path,
            max_fail: Some(1),
            keep_passing_output: false,
            retry: prun::config::RetryConfig::default(),
            leak_timeout: prun::config::LeakTimeout::default(),
            leak_timeouts: HashMap::new(),
            notice_after: Duration::from_millis(200),
            doctests: None,
        }
    }
}

/// How one attempt went, however it ran (a worker's response, or libtest's lines and the end of
/// its process): its outcome, what it printed and what the harness captured of it, how long it
/// took where that was measured, and what it used.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) outcome: Outcome,
    pub(crate) printed: Printed,
    pub(crate) captured: String,
    pub(crate) duration: Duration,
    pub(crate) usage: Option<Usage>,
}

/// `cargo test --doc` for the doctests' job: the build flags, filters and thread count.
#[derive(Debug, Clone)]
pub(crate) struct Doctests {
    pub(crate) build_args: Vec<String>,
    pub(crate) filters: Vec<String>,
    pub(crate) threads: usize,
}

/// Where and when one attempt of a test ran.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) test: usize,
    pub(crate) slot: usize,
    /// The process it ran in (see `ProcessExecutor::processes`).
    pub(crate) process: u64,
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    /// The machine was oversubscribed at some moment while it ran.
    pub(crate) loaded: bool,
}

/// What ran where, for diagnosis: every attempt, and the final failures among them.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) spans: Vec<Span>,
    /// Final failures (not retried), to be rerun alone.
    pub(crate) failed: Vec<Span>,
    /// Tests already seen failing alone (in a process of their own): no rerun for them.
    pub(crate) failed_alone: std::collections::HashSet<usize>,
}

impl ProcessExecutor {
    pub(crate) fn new(
        binaries: Vec<Binary>,
        (tests, jobs): (Vec<PlannedTest>, Vec<PlannedJob>),
        settings: Settings,
        events: Sender<Event>,
        started: Instant,
    ) -> ProcessExecutor {
        let ports = ports::PortBand::reserve(&settings.run_id);
        let universes = binaries.iter().map(|_| std::sync::OnceLock::new()).collect();
        ProcessExecutor {
            universes,
            binaries,
            tests,
            jobs,
            stop: stop::Stop::new(settings.max_fail),
            settings,
            events: Mutex::new(Some(events)),
            started,
            workers: Mutex::default(),
            children: Arc::default(),
            processes: AtomicU64::new(0),
            spans: Mutex::default(),
            failed: Mutex::default(),
            failed_alone: Mutex::default(),
            ports,
        }
    }

    fn next_process(&self) -> u64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }

    /// What every test process sees: the run's id, its slot's ports, a private temp dir, and
    /// the variables cargo test sets.
    fn env(&self, binary: &Binary, slot: usize) -> Vec<(String, String)> {
        let ports = self.ports.range(slot);
        let mut env = vec![
            (prun::protocol::RUN_ID_ENV.into(), self.settings.run_id.clone()),
            (prun::protocol::WORKER_ID_ENV.into(), slot.to_string()),
            (prun::protocol::PORT_RANGE_ENV.into(), format!("{}-{}", ports.0, ports.1)),
            ("TMPDIR".into(), self.settings.run_dir.join("tmp").display().to_string()),
            ("CARGO_MANIFEST_DIR".into(), binary.binary.package_dir.display().to_string()),
            ("CARGO_PKG_NAME".into(), binary.binary.package_name.clone()),
            ("RUST_TEST_THREADS".into(), "1".into()),
            ("LD_LIBRARY_PATH".into(), self.settings.dylib_path.to_string_lossy().into_owned()),
        ];
        env.extend(binary.binary.env.iter().cloned());
        env
    }

    fn new_worker(
        &self,
        binary_index: usize,
        slot: usize,
    ) -> Result<WorkerProcess, worker_process::StartError> {
        let binary = &self.binaries[binary_index];
        let mut env = self.env(binary, slot);
        let namespace = format!("w{slot}b{binary_index}");
        env.push((prun::protocol::WORKER_NAMESPACE_ENV.into(), namespace));
        let socket = self.settings.run_dir.join(format!("w{slot}-b{binary_index}.sock"));
        let launch = Launch {
            binary: &binary.binary,
            cwd: &binary.binary.package_dir,
            env: &env,
            socket: &socket,
            children: &self.children,
        };
        WorkerProcess::spawn(&launch)
    }

    /// The record of the schedule, once it is over; the pooled workers are stopped, so that
    /// nothing else runs while diagnosis replays tests.
    pub(crate) fn take_record(&self) -> Record {
        self.retire_workers();
        Record {
            spans: self.spans.lock().clone(),
            failed: std::mem::take(&mut *self.failed.lock()),
            failed_alone: self.failed_alone.lock().clone(),
        }
    }

    pub(crate) fn send(&self, event: Event) {
        if let Some(events) = &*self.events.lock() {
            let _ = events.send(event);
        }
    }

    /// Ctrl-C or SIGTERM: start no more tests, and kill every test process now. The tests they
    /// were running are reported as skipped, not failed.
    pub(crate) fn interrupt(&self) {
        self.stop.stop();
        self.children.kill_all();
    }

    /// Ends the run: no more events, and every worker process is stopped. All are told to stop
    /// before any is waited for, so they exit together.
    pub(crate) fn shut_down(&self) {
        self.events.lock().take();
        self.retire_workers();
    }

    /// Stops every pooled worker process.
    fn retire_workers(&self) {
        let workers: Vec<WorkerProcess> =
            self.workers.lock().drain().map(|(_, (worker, _))| worker).collect();
        for worker in &workers {
            worker.hang_up();
        }
        drop(workers);
    }
}

impl ProcessExecutor {
    /// One test of its own, with how `run` runs it (its attempt, and the number of the process
    /// it ran in): announced as it starts, "not run" once the run stopped.
    fn single(
        &self,
        index: usize,
        slot: usize,
        dispatch: Dispatch,
        run: impl FnOnce(&PlannedTest) -> (Attempt, u64),
    ) -> Finished {
        let test = &self.tests[index];
        let started_at = self.started.elapsed();
        let began = Instant::now();
        let binary = &self.binaries[test.binary].binary.id;
        let (binary, name) = (binary.clone(), test.name().to_owned());
        self.send(Event::Started { binary, name, worker: slot, running_for: Duration::ZERO });
        let (attempt, process) = if self.stop.stopped() {
            (Attempt::of(Outcome::NotRun { reason: self.stop.reason() }), None)
        } else {
            let (attempt, process) = run(test);
            (attempt, Some(process))
        };
        let Attempt { outcome, printed, captured, usage, .. } = attempt;
        let duration = began.elapsed();
        let ran = Ran { slot, attempt: dispatch.attempt, started_at, duration, process, usage };
        let mut finished = self.report(index, ran, outcome, printed, captured);
        finished.group_wait = dispatch.group_wait;
        finished
    }

    /// The test's leak timeout: its own, else the run's.
    pub(crate) fn leak_timeout_of(&self, test: &PlannedTest) -> prun::config::LeakTimeout {
        if self.settings.leak_timeouts.is_empty() {
            return self.settings.leak_timeout;
        }
        self.settings.leak_timeouts.get(test.id()).copied().unwrap_or(self.settings.leak_timeout)
    }

    /// A passing test that leaked is LEAK, or a failure when the config says so; any other
    /// outcome stays as it is.
    fn judge_leak(&self, test: &PlannedTest, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Leaked { reason } if self.leak_timeout_of(test).fail => {
                let reason = format!("leaked: {reason} (leak-timeout result = \"fail\")");
                Outcome::Failed { reason }
            }
            outcome => outcome,
        }
    }

    fn report(
        &self,
        index: usize,
        ran: Ran,
        outcome: Outcome,
        mut printed: Printed,
        captured: String,
    ) -> Finished {
        let test = &self.tests[index];
        let outcome = if self.children.interrupted() && !outcome.passed() {
            Outcome::NotRun { reason: "interrupted".into() }
        } else {
            outcome
        };
        if outcome.passed() && !self.settings.keep_passing_output {
            printed = Printed::default();
        }
        if let Some(process) = ran.process {
            let (start, end) = (ran.started_at, ran.started_at + ran.duration);
            let slot = ran.slot;
            let span = Span { test: index, slot, process, start, end, loaded: false };
            self.spans.lock().push(span);
        }
        Finished {
            binary: self.binaries[test.binary].binary.id.clone(),
            name: test.name().to_owned(),
            attempt: ran.attempt,
            worker: ran.slot,
            passed: outcome.passed(),
            outcome,
            started_at: ran.started_at,
            duration: ran.duration,
            // Whole: the report stage redacts, then keeps what a report holds of it.
            stdout: String::from_utf8_lossy(&printed.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&printed.stderr).into_owned(),
            captured,
            will_retry: false,
            quarantined: test.quarantined,
            groups: test.meta.groups.clone(),
            group_wait: Duration::ZERO,
            shard: None,
            usage: ran.usage,
            test: Some(index),
            should_panic: false,
        }
    }
}

impl Attempt {
    /// An attempt that never reached a test process: its outcome alone.
    fn of(outcome: Outcome) -> Attempt {
        let (printed, captured) = (Printed::default(), String::new());
        Attempt { outcome, printed, captured, duration: Duration::ZERO, usage: None }
    }
}

/// Where and when an attempt ran.
#[derive(Debug, Clone, Copy)]
struct Ran {
    slot: usize,
    attempt: u32,
    started_at: Duration,
    duration: Duration,
    /// The process it ran in; none when it did not run.
    process: Option<u64>,
    /// What it used, where that was measured.
    usage: Option<Usage>,
}

/// A way of running a job's tests, one per [`Runner`], on the dispatch's lane: each test of the
/// job gets its finished attempts (a batch's own retries included).
pub(super) trait Way: Sync {
    fn run(&self, on: &ProcessExecutor, job: &[usize], dispatch: Dispatch) -> Vec<Finished>;
}

/// The way of each runner, chosen when the plan was made.
fn way(runner: Runner) -> &'static dyn Way {
    match runner {
        Runner::Worker => &pooled::Pooled,
        Runner::Process => &own_process::OwnProcess,
        Runner::LibtestBatch => &batched::LibtestBatch,
        Runner::Doctests => &DoctestsJob,
    }
}

/// [`Way`] of [`Runner::Doctests`]: each doctest reported as a test of the binary `doctests`.
struct DoctestsJob;

impl Way for DoctestsJob {
    fn run(&self, on: &ProcessExecutor, _job: &[usize], dispatch: Dispatch) -> Vec<Finished> {
        let Some(doctests) = &on.settings.doctests else { return Vec::new() };
        if on.stop.stopped() {
            return Vec::new();
        }
        let started_at = on.started.elapsed();
        match crate::doctests::run(&doctests.build_args, &doctests.filters, doctests.threads) {
            Ok(results) => results
                .into_iter()
                .map(|f| Finished { started_at, worker: dispatch.lane, ..f })
                .collect(),
            Err(error) => {
                eprintln!("warning: doctests not run: {error}");
                Vec::new()
            }
        }
    }
}

impl Executor for ProcessExecutor {
    type Worker = usize;
    /// One finished attempt per test of the job.
    type Report = Vec<Finished>;

    fn worker(&self, id: usize) -> usize {
        id
    }

    /// Runs in the dispatch's lane (the lowest free), not the pool thread's: the worker
    /// processes and port blocks are the lane's.
    fn execute(&self, _thread: &usize, dispatch: Dispatch) -> (bool, Vec<Finished>) {
        let job = &self.jobs[dispatch.job];
        // A retry waits in its slot, holding its groups as the test would.
        std::thread::sleep(self.settings.retry.wait_before(dispatch.attempt));
        let finished = way(job.runner).run(self, &job.tests, dispatch);
        // Passed when every final attempt did (a batch's test may have been retried in it).
        (finished.iter().filter(|f| !f.will_retry).all(|f| f.passed), finished)
    }

    fn finished(&self, dispatch: Dispatch, report: Vec<Finished>, will_retry: bool) {
        for mut finished in report {
            // A batch's test retried in the batch already says so.
            finished.will_retry |= will_retry;
            let will_retry = finished.will_retry;
            if !finished.passed && !will_retry && !finished.quarantined {
                self.stop.failed();
            }
            if !will_retry
                && matches!(finished.outcome, Outcome::Failed { .. } | Outcome::Crashed { .. })
            {
                let span = finished.test.and_then(|test| {
                    self.spans.lock().iter().rev().find(|s| s.test == test).copied()
                });
                let span = span.map(|span| Span { loaded: dispatch.loaded, ..span });
                self.failed.lock().extend(span);
            }
            self.send(Event::Finished(finished));
        }
    }
}

impl crate::diagnose::Replay for ProcessExecutor {
    fn tests(&self) -> &[PlannedTest] {
        &self.tests
    }

    fn binaries(&self) -> &[Binary] {
        &self.binaries
    }

    fn interrupted(&self) -> bool {
        self.children.interrupted()
    }

    fn run_in_order(&self, tests: &[usize], slot: usize) -> Option<bool> {
        let binary_index = self.tests[tests[0]].binary;
        let binary = &self.binaries[binary_index];
        let last = *tests.last()?;
        match binary.kind {
            Kind::Prun if !self.tests[last].meta.isolate => {
                let mut worker = self.new_worker(binary_index, slot).ok()?;
                let mut outcome = None;
                for &index in tests {
                    let test = &self.tests[index];
                    let answer = worker.run(test.name(), 1, test.job.slots, index, test.timeout);
                    if index == last {
                        outcome = Some(answer.alive && answer.attempt.outcome.passed());
                    }
                    if !answer.alive {
                        break;
                    }
                }
                worker.hang_up();
                outcome
            }
            Kind::Prun => Some(self.run_alone(&self.tests[last], slot).outcome.passed()),
            // One process per test, in order; the last one's verdict.
            Kind::OneFilter => {
                let mut passed = None;
                for &index in tests {
                    passed = Some(self.run_alone(&self.tests[index], slot).outcome.passed());
                }
                passed
            }
            Kind::Libtest => {
                let members: Vec<_> = tests.iter().map(|&t| &self.tests[t]).collect();
                // The last one's result, at its first place among them.
                let at = tests.iter().position(|&t| t == last)?;
                let batched = self.libtest_batch(&members, slot).swap_remove(at)?;
                // A leak fails the test when the config says so, in a replay as in the run.
                let outcome = self.judge_leak(&self.tests[last], batched.attempt.outcome);
                (!batched.missing).then(|| outcome.passed())
            }
        }
    }
}
