//! Execute: runs each dispatched test in a process, under the one global schedule.
//!
//! prun binaries run as worker processes, one per (binary, slot), kept for the whole run; plain
//! libtest binaries run one process per test. A process that dies or a test past its timeout
//! costs that test only: it is reported with what happened and the slot gets a fresh worker.

mod children;
mod libtest_batch;
mod libtest_process;
mod libtest_select;
pub(crate) mod output;
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
use libtest_batch::{Batch, Batched};
use libtest_process::LibtestRun;
use output::Printed;
use worker_process::{Answer, Launch, WorkerProcess};

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

    /// This slot's worker process for the binary (the running one, or a new one), and its
    /// process number.
    fn checkout_worker(
        &self,
        binary_index: usize,
        slot: usize,
    ) -> Result<(WorkerProcess, u64), worker_process::StartError> {
        if let Some(worker) = self.workers.lock().remove(&(binary_index, slot)) {
            return Ok(worker);
        }
        Ok((self.new_worker(binary_index, slot)?, self.next_process()))
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

    /// `index` numbers the test within the run, for its namespace. Also returns the number
    /// of the process it ran in.
    fn run_in_worker(
        &self,
        test: &PlannedTest,
        index: usize,
        slot: usize,
        dispatch: Dispatch,
    ) -> (Attempt, u64) {
        let (mut worker, process) = match self.checkout_worker(test.binary, slot) {
            Ok(worker) => worker,
            Err(error) => {
                let outcome = Outcome::Crashed { reason: error.to_string() };
                return (Attempt::of(outcome), self.next_process());
            }
        };
        let answer = worker.run(&test.name, dispatch.attempt, dispatch.slots, index, test.timeout);
        if answer.alive {
            self.workers.lock().insert((test.binary, slot), (worker, process));
        }
        (answer.attempt, process)
    }

    /// A batch of a prun binary's plain unit tests, streamed to one worker (see
    /// `WorkerProcess::run_many`). A test that takes the worker down is reported, and the rest
    /// go on in a fresh worker.
    fn run_prun_batch(&self, members: &[usize], slot: usize, dispatch: Dispatch) -> Vec<Finished> {
        let mut finished = Vec::with_capacity(members.len());
        let mut remaining = members;
        let mut at = self.started.elapsed();
        // Fail-fast applies inside the batch too: after the last allowed failure, no more.
        let failed_here = std::cell::Cell::new(0);
        let over_the_limit = || self.stop.reached_with(failed_here.get());
        while let Some(&first) = remaining.first() {
            let binary = self.tests[first].binary;
            let ran = |at, duration, process, usage| Ran {
                slot,
                attempt: dispatch.attempt,
                started_at: at,
                duration,
                process,
                usage,
            };
            // Every test left gets one outcome: the run stopped, or no worker could start.
            let settle = |finished: &mut Vec<Finished>, outcome: Outcome| {
                for &index in remaining {
                    let ran = ran(at, Duration::ZERO, None, None);
                    let (printed, captured) = (Printed::default(), String::new());
                    finished.push(self.report(index, ran, outcome.clone(), printed, captured));
                }
            };
            if self.stop.stopped() {
                settle(&mut finished, Outcome::NotRun { reason: self.stop.reason() });
                break;
            }
            let (mut worker, process) = match self.checkout_worker(binary, slot) {
                Ok(worker) => worker,
                Err(error) => {
                    settle(&mut finished, Outcome::Crashed { reason: error.to_string() });
                    break;
                }
            };
            let names: Vec<(&str, usize)> =
                remaining.iter().map(|&i| (self.tests[i].name.as_str(), i)).collect();
            // A test that runs a while is announced (the worker runs them in order: each started
            // when the one before it answered).
            let long = |position: usize, running_for: Duration| {
                let (binary, name) = (
                    self.binaries[binary].binary.id.clone(),
                    self.tests[remaining[position]].name.clone(),
                );
                self.send(Event::Started { binary, name, worker: slot, running_for });
            };
            // Batched tests have no timeout of their own; the config's terminate-after holds.
            let limits = worker_process::Limits {
                timeout: self.tests[first].timeout,
                notice_after: self.settings.notice_after,
            };
            let answers = worker.run_many(&names, dispatch.attempt, limits, long, |answer| {
                if !answer.attempt.outcome.passed() {
                    failed_here.set(failed_here.get() + 1);
                }
                !over_the_limit()
            });
            let mut alive = true;
            let done = answers.len();
            for (Answer { attempt, alive: ok }, &index) in answers.into_iter().zip(remaining) {
                let Attempt { outcome, printed, captured, duration, usage } = attempt;
                if !ok {
                    failed_here.set(failed_here.get() + 1);
                }
                alive = ok;
                let ran = ran(at, duration, Some(process), usage);
                finished.push(self.report(index, ran, outcome, printed, captured));
                at += duration;
            }
            if alive {
                self.workers.lock().insert((binary, slot), (worker, process));
            }
            remaining = &remaining[done..];
            if over_the_limit() {
                self.stop.stop();
            }
        }
        finished
    }

    /// Runs plain tests of one binary one after another in one process (`libtest_batch`).
    fn libtest_batch(
        &self,
        tests: &[&PlannedTest],
        slot: usize,
    ) -> std::collections::BTreeMap<String, Batched> {
        let binary = &self.binaries[tests[0].binary];
        let env = self.env(binary, slot);
        let on_long = |name: &str, running_for: Duration| {
            let (binary, name) = (binary.binary.id.clone(), name.to_owned());
            self.send(Event::Started { binary, name, worker: slot, running_for });
        };
        let batch = Batch {
            binary: &binary.binary,
            cwd: &binary.binary.package_dir,
            env: &env,
            tests: tests.iter().map(|t| (t.name.as_str(), t.timeout)).collect(),
            include_ignored: tests.iter().any(|t| t.meta.ignore),
            whole_binary: self.settings.harness_args.is_empty()
                && tests.iter().all(|t| !t.meta.ignore)
                && tests.len() == binary.tests.iter().filter(|t| !t.ignore).count(),
            extra_args: &self.settings.harness_args,
            children: &self.children,
            on_long: &on_long,
            notice_after: self.settings.notice_after,
            // A batch waits as long as the most patient of its tests would.
            leak_timeout: tests
                .iter()
                .map(|t| self.leak_timeout_of(t).period)
                .max()
                .unwrap_or(self.settings.leak_timeout.period),
            universe: Some(self.universes[tests[0].binary].get_or_init(|| {
                let names = binary.tests.iter().map(|t| t.name.as_str());
                libtest_select::Universe::new(
                    names.chain(binary.benchmarks.iter().map(String::as_str)),
                )
            })),
        };
        libtest_batch::run(&batch)
    }

    /// A test in a process of its own: how it ended (a leak judged by the config), what it
    /// printed, what it used.
    fn run_alone(&self, test: &PlannedTest, slot: usize) -> Attempt {
        let binary = &self.binaries[test.binary];
        let env = self.env(binary, slot);
        let run = LibtestRun {
            binary: &binary.binary,
            cwd: &binary.binary.package_dir,
            env: &env,
            name: &test.name,
            ignored: test.meta.ignore,
            extra_args: &self.settings.harness_args,
            timeout: test.timeout,
            children: &self.children,
            leak_timeout: self.leak_timeout_of(test).period,
        };
        let attempt = libtest_process::run(&run);
        Attempt { outcome: self.judge_leak(test, attempt.outcome), ..attempt }
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
    /// One test of its own: in a worker, or a process of its own.
    fn run_single(
        &self,
        index: usize,
        slot: usize,
        dispatch: Dispatch,
        runner: Runner,
    ) -> Finished {
        let test = &self.tests[index];
        let started_at = self.started.elapsed();
        let began = Instant::now();
        let binary = &self.binaries[test.binary].binary.id;
        let (binary, name) = (binary.clone(), test.name.clone());
        self.send(Event::Started { binary, name, worker: slot, running_for: Duration::ZERO });
        let (attempt, process) = if self.stop.stopped() {
            (Attempt::of(Outcome::NotRun { reason: self.stop.reason() }), None)
        } else {
            match runner {
                Runner::Worker => {
                    let (attempt, process) = self.run_in_worker(test, index, slot, dispatch);
                    (attempt, Some(process))
                }
                _ => (self.run_alone(test, slot), Some(self.next_process())),
            }
        };
        let Attempt { outcome, printed, captured, usage, .. } = attempt;
        let duration = began.elapsed();
        let ran = Ran { slot, attempt: dispatch.attempt, started_at, duration, process, usage };
        let mut finished = self.report(index, ran, outcome, printed, captured);
        finished.group_wait = dispatch.group_wait;
        finished
    }

    /// A batch of a plain binary's tests in one process. A test of it that fails and has
    /// retries (that its job does not make) is retried at once, in a process of its own.
    fn run_batch(&self, members: &[usize], slot: usize, dispatch: Dispatch) -> Vec<Finished> {
        let tests: Vec<&PlannedTest> = members.iter().map(|&i| &self.tests[i]).collect();
        let started_at = self.started.elapsed();
        if self.stop.stopped() {
            let (attempt, duration) = (dispatch.attempt, Duration::ZERO);
            let ran = Ran { slot, attempt, started_at, duration, process: None, usage: None };
            let skipped = || Outcome::NotRun { reason: self.stop.reason() };
            return members
                .iter()
                .map(|&t| self.report(t, ran, skipped(), Printed::default(), String::new()))
                .collect();
        }
        let process = Some(self.next_process());
        let mut results = self.libtest_batch(&tests, slot);
        let mut at = started_at;
        let first: Vec<Finished> = members
            .iter()
            .map(|&index| {
                let batched = results.remove(&self.tests[index].name).unwrap_or_else(no_result);
                let (attempt, duration) = (dispatch.attempt, batched.attempt.duration);
                let usage = batched.attempt.usage;
                let ran = Ran { slot, attempt, started_at: at, duration, process, usage };
                at += duration;
                self.batch_finished(index, batched, ran)
            })
            .collect();
        // The pool retries a job that has retries of its own; a batch's tests are retried here.
        if self.jobs[dispatch.job].job.retries > 0 {
            return first;
        }
        let mut finished = Vec::with_capacity(first.len());
        for mut last in first {
            let Some(index) = last.test else { continue };
            let retries = self.tests[index].job.retries;
            while !last.passed && last.attempt <= retries && !self.stop.stopped() {
                last.will_retry = true;
                let attempt = last.attempt + 1;
                finished.push(last);
                std::thread::sleep(self.settings.retry.wait_before(attempt));
                last = self.retry_alone(index, slot, attempt);
            }
            finished.push(last);
        }
        finished
    }

    /// The doctests' job: each doctest reported as a test of the binary `doctests`.
    fn run_doctests(&self, dispatch: Dispatch) -> (bool, Vec<Finished>) {
        let Some(doctests) = &self.settings.doctests else { return (true, Vec::new()) };
        if self.stop.stopped() {
            return (true, Vec::new());
        }
        let started_at = self.started.elapsed();
        match crate::doctests::run(&doctests.build_args, &doctests.filters, doctests.threads) {
            Ok(results) => {
                let finished: Vec<Finished> = results
                    .into_iter()
                    .map(|f| Finished { started_at, worker: dispatch.lane, ..f })
                    .collect();
                (finished.iter().all(|f| f.passed), finished)
            }
            Err(error) => {
                eprintln!("warning: doctests not run: {error}");
                (true, Vec::new())
            }
        }
    }

    /// One more attempt of a plain test, as a batch of one in a fresh process.
    fn retry_alone(&self, index: usize, slot: usize, attempt: u32) -> Finished {
        let started_at = self.started.elapsed();
        let process = Some(self.next_process());
        let test = &self.tests[index];
        let batched =
            self.libtest_batch(&[test], slot).remove(&test.name).unwrap_or_else(no_result);
        let (duration, usage) = (batched.attempt.duration, batched.attempt.usage);
        let ran = Ran { slot, attempt, started_at, duration, process, usage };
        self.batch_finished(index, batched, ran)
    }

    /// The test's leak timeout: its own, else the run's.
    pub(crate) fn leak_timeout_of(&self, test: &PlannedTest) -> prun::config::LeakTimeout {
        if self.settings.leak_timeouts.is_empty() {
            return self.settings.leak_timeout;
        }
        self.settings
            .leak_timeouts
            .get(&test.id(&self.binaries))
            .copied()
            .unwrap_or(self.settings.leak_timeout)
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

    /// How a test of a batch ended, as a report.
    fn batch_finished(&self, index: usize, batched: Batched, ran: Ran) -> Finished {
        if batched.output_lost {
            return self.output_from_alone(index, ran);
        }
        let Attempt { outcome, printed, captured, .. } = batched.attempt;
        let outcome = self.judge_leak(&self.tests[index], outcome);
        self.report(index, ran, outcome, printed, captured)
    }

    /// libtest prints a failed test's output at the end of the run, so a batch whose process
    /// died later lost it: the test runs again alone, now, for its output. Failing alone, that
    /// run is its report (and it needs no rerun after the schedule).
    fn output_from_alone(&self, index: usize, ran: Ran) -> Finished {
        let Attempt { outcome: alone, printed, .. } = self.run_alone(&self.tests[index], ran.slot);
        let captured = String::new();
        if alone.passed() {
            let reason = "the test failed; its output was lost when a later test of its batch \
                          took the process down, and it passed when run again alone"
                .to_owned();
            return self.report(
                index,
                ran,
                Outcome::Failed { reason },
                Printed::default(),
                captured,
            );
        }
        self.failed_alone.lock().insert(index);
        self.report(index, ran, alone, printed, captured)
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
            name: test.name.clone(),
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

/// A test a batch has no result for (the batch's process ended before it said).
fn no_result() -> Batched {
    let outcome = Outcome::Failed { reason: "no result".into() };
    Batched { attempt: Attempt::of(outcome), output_lost: false, missing: true }
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
        let slot = &dispatch.lane;
        let members = &self.jobs[dispatch.job].tests;
        // A retry waits in its slot, holding its groups as the test would.
        std::thread::sleep(self.settings.retry.wait_before(dispatch.attempt));
        let finished = match (self.jobs[dispatch.job].runner, members.as_slice()) {
            (Runner::Doctests, _) => return self.run_doctests(dispatch),
            (Runner::Worker, [only]) => {
                vec![self.run_single(*only, *slot, dispatch, Runner::Worker)]
            }
            (Runner::Worker, _) => self.run_prun_batch(members, *slot, dispatch),
            (Runner::Process, [only]) => {
                vec![self.run_single(*only, *slot, dispatch, Runner::Process)]
            }
            (Runner::Process | Runner::LibtestBatch, _) => self.run_batch(members, *slot, dispatch),
        };
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
                    let answer = worker.run(&test.name, 1, test.job.slots, index, test.timeout);
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
                let batched = self.libtest_batch(&members, slot).remove(&self.tests[last].name)?;
                // A leak fails the test when the config says so, in a replay as in the run.
                let outcome = self.judge_leak(&self.tests[last], batched.attempt.outcome);
                (!batched.missing).then(|| outcome.passed())
            }
        }
    }
}
