//! The way a test runs in a process of its own (`--exact NAME`), its output read as it comes:
//! an `isolate`d prun test, or a plain test whose passing output is shown.

use prun::scheduler::Dispatch;

use super::libtest_process::{self, LibtestRun};
use super::{Attempt, ProcessExecutor, Way};
use crate::event::Finished;
use crate::plan::PlannedTest;

/// [`Way`] of [`crate::plan::Runner::Process`].
pub(super) struct OwnProcess;

impl Way for OwnProcess {
    fn run(&self, on: &ProcessExecutor, job: &[usize], dispatch: Dispatch) -> Vec<Finished> {
        let lane = dispatch.lane;
        job.iter()
            .map(|&index| {
                on.single(index, lane, dispatch, |test| {
                    (on.run_alone(test, lane), on.next_process())
                })
            })
            .collect()
    }
}

impl ProcessExecutor {
    /// A test in a process of its own: how it ended (a leak judged by the config), what it
    /// printed, what it used.
    pub(super) fn run_alone(&self, test: &PlannedTest, slot: usize) -> Attempt {
        let binary = &self.binaries[test.binary];
        let env = self.env(binary, slot);
        let run = LibtestRun {
            binary: &binary.binary,
            cwd: &binary.binary.package_dir,
            env: &env,
            name: test.name(),
            ignored: test.meta.ignore,
            extra_args: &self.settings.harness_args,
            timeout: test.timeout,
            children: &self.children,
            leak_timeout: self.leak_timeout_of(test).period,
        };
        let attempt = libtest_process::run(&run);
        Attempt { outcome: self.judge_leak(test, attempt.outcome), ..attempt }
    }
}
