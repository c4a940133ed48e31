//! The way plain tests run: one after another in one libtest process (`libtest_batch`), which
//! captures their output as `cargo test` does. A test of the batch that fails and has retries
//! (that its job does not make) is retried at once, in a process of its own.

use std::time::Duration;

use prun::scheduler::Dispatch;

use super::libtest_batch::{self, Batch, Batched};
use super::output::Printed;
use super::{Attempt, ProcessExecutor, Ran, Way};
use crate::event::{Event, Finished, Outcome};
use crate::plan::PlannedTest;

/// [`Way`] of [`crate::plan::Runner::LibtestBatch`].
pub(super) struct LibtestBatch;

impl Way for LibtestBatch {
    fn run(&self, on: &ProcessExecutor, job: &[usize], dispatch: Dispatch) -> Vec<Finished> {
        let lane = dispatch.lane;
        on.run_batch(job, lane, dispatch)
    }
}

impl ProcessExecutor {
    /// Runs plain tests of one binary one after another in one process (`libtest_batch`):
    /// how each went, in their order (`None`: no result).
    pub(super) fn libtest_batch(
        &self,
        tests: &[&PlannedTest],
        slot: usize,
    ) -> Vec<Option<Batched>> {
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
            tests: tests.iter().map(|t| (t.name(), t.timeout)).collect(),
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
                super::libtest_select::Universe::new(
                    names.chain(binary.benchmarks.iter().map(String::as_str)),
                )
            })),
        };
        libtest_batch::run(&batch)
    }

    /// A batch of a plain binary's tests in one process. A test of it that fails and has
    /// retries (that its job does not make) is retried at once, in a process of its own.
    pub(super) fn run_batch(
        &self,
        members: &[usize],
        slot: usize,
        dispatch: Dispatch,
    ) -> Vec<Finished> {
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
        let results = self.libtest_batch(&tests, slot);
        let mut at = started_at;
        let first: Vec<Finished> = members
            .iter()
            .zip(results)
            .map(|(&index, batched)| {
                let batched = batched.unwrap_or_else(no_result);
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

    /// One more attempt of a plain test, as a batch of one in a fresh process.
    pub(super) fn retry_alone(&self, index: usize, slot: usize, attempt: u32) -> Finished {
        let started_at = self.started.elapsed();
        let process = Some(self.next_process());
        let test = &self.tests[index];
        let batched = self.libtest_batch(&[test], slot).pop().flatten().unwrap_or_else(no_result);
        let (duration, usage) = (batched.attempt.duration, batched.attempt.usage);
        let ran = Ran { slot, attempt, started_at, duration, process, usage };
        self.batch_finished(index, batched, ran)
    }

    /// How a test of a batch ended, as a report.
    pub(super) fn batch_finished(&self, index: usize, batched: Batched, ran: Ran) -> Finished {
        let mut finished = if batched.output_lost {
            self.output_from_alone(index, ran)
        } else {
            let Attempt { outcome, printed, captured, .. } = batched.attempt;
            let outcome = self.judge_leak(&self.tests[index], outcome);
            self.report(index, ran, outcome, printed, captured)
        };
        finished.should_panic = batched.should_panic;
        finished
    }

    /// libtest prints a failed test's output at the end of the run, so a batch whose process
    /// died later lost it: the test runs again alone, now, for its output. Failing alone, that
    /// run is its report (and it needs no rerun after the schedule).
    pub(super) fn output_from_alone(&self, index: usize, ran: Ran) -> Finished {
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
}

/// A test a batch has no result for (the batch's process ended before it said).
fn no_result() -> Batched {
    let outcome = Outcome::Failed { reason: "no result".into() };
    Batched {
        attempt: Attempt::of(outcome),
        output_lost: false,
        missing: true,
        should_panic: false,
    }
}
