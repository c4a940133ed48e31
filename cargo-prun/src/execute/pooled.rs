//! The way a prun harness's tests run: in the binary's pooled worker process for the lane, one
//! test, or a batch of them streamed to it. A test that takes the worker down is reported, and
//! the lane gets a fresh worker.

use std::time::Duration;

use prun::scheduler::Dispatch;

use super::output::Printed;
use super::worker_process::{self, Answer, WorkerProcess};
use super::{Attempt, ProcessExecutor, Ran, Way};
use crate::event::{Event, Finished, Outcome};
use crate::plan::PlannedTest;

/// [`Way`] of [`crate::plan::Runner::Worker`].
pub(super) struct Pooled;

impl Way for Pooled {
    fn run(&self, on: &ProcessExecutor, job: &[usize], dispatch: Dispatch) -> Vec<Finished> {
        let lane = dispatch.lane;
        match job {
            [only] => vec![on.single(*only, lane, dispatch, |test| {
                on.run_in_worker(test, *only, lane, dispatch)
            })],
            _ => on.run_prun_batch(job, lane, dispatch),
        }
    }
}

impl ProcessExecutor {
    /// This slot's worker process for the binary (the running one, or a new one), and its
    /// process number.
    pub(super) fn checkout_worker(
        &self,
        binary_index: usize,
        slot: usize,
    ) -> Result<(WorkerProcess, u64), worker_process::StartError> {
        if let Some(worker) = self.workers.lock().remove(&(binary_index, slot)) {
            return Ok(worker);
        }
        Ok((self.new_worker(binary_index, slot)?, self.next_process()))
    }

    /// `index` numbers the test within the run, for its namespace. Also returns the number
    /// of the process it ran in.
    pub(super) fn run_in_worker(
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
        let answer = worker.run(test.name(), dispatch.attempt, dispatch.slots, index, test.timeout);
        if answer.alive {
            self.workers.lock().insert((test.binary, slot), (worker, process));
        }
        (answer.attempt, process)
    }

    /// A batch of a prun binary's plain unit tests, streamed to one worker (see
    /// `WorkerProcess::run_many`). A test that takes the worker down is reported, and the rest
    /// go on in a fresh worker.
    pub(super) fn run_prun_batch(
        &self,
        members: &[usize],
        slot: usize,
        dispatch: Dispatch,
    ) -> Vec<Finished> {
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
                remaining.iter().map(|&i| (self.tests[i].name(), i)).collect();
            // A test that runs a while is announced (the worker runs them in order: each started
            // when the one before it answered).
            let long = |position: usize, running_for: Duration| {
                let (binary, name) = (
                    self.binaries[binary].binary.id.clone(),
                    self.tests[remaining[position]].name().to_owned(),
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
}
