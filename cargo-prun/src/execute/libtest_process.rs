//! A plain libtest binary: one process per test, as nextest runs them.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use prun::usage::Usage;

use super::Attempt;
use super::children::Children;
use super::output::{Output, Printed};
use super::status;
use crate::build::TestBinary;
use crate::event::Outcome;
use crate::os::TestProcess;

pub(crate) struct LibtestRun<'a> {
    pub(crate) binary: &'a TestBinary,
    pub(crate) cwd: &'a Path,
    pub(crate) env: &'a [(String, String)],
    pub(crate) name: &'a str,
    pub(crate) ignored: bool,
    pub(crate) extra_args: &'a [String],
    pub(crate) timeout: Option<Duration>,
    pub(crate) children: &'a Children,
    /// How long the output may stay open after the process ended.
    pub(crate) leak_timeout: Duration,
}

/// Which tests a libtest process runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Select<'a> {
    /// These names exactly (none: every test).
    Names(&'a [&'a str]),
    /// Every test whose name contains one of these (see `libtest_select`).
    Substrings(&'a [String]),
}

/// A libtest binary run as the test processes are: in its package's directory, with the run's
/// environment, one test at a time: `flags`, the user's `-- HARNESS_ARGS`, then `--` and the
/// names or substrings that select the tests (so that one starting with `-` is never read as a
/// flag).
pub(crate) fn command(
    binary: &TestBinary,
    cwd: &Path,
    env: &[(String, String)],
    select: Select<'_>,
    flags: &[&str],
    extra_args: &[String],
) -> crate::os::TestCommand {
    let mut command = binary.test_command();
    command.args(flags).arg("--test-threads=1");
    if let Select::Names(_) = select {
        command.arg("--exact");
    }
    command.args(extra_args).arg("--");
    match select {
        Select::Names(names) => command.args(names),
        Select::Substrings(substrings) => command.args(substrings),
    };
    command.current_dir(cwd).envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Runs the test: how it ended, what it printed, what its process used (when it was reaped).
pub(crate) fn run(test: &LibtestRun<'_>) -> Attempt {
    let mut usage = None;
    let (outcome, printed) = run_measured(test, &mut usage);
    Attempt { outcome, printed, captured: String::new(), duration: Duration::ZERO, usage }
}

fn run_measured(test: &LibtestRun<'_>, usage: &mut Option<Usage>) -> (Outcome, Printed) {
    let failed = |reason: String, printed| (Outcome::Failed { reason }, printed);
    let mut flags = vec!["--nocapture"];
    if test.ignored {
        flags.push("--ignored");
    }
    let names = [test.name];
    let select = Select::Names(&names);
    let command = command(test.binary, test.cwd, test.env, select, &flags, test.extra_args);
    let mut child = match crate::os::spawn(command) {
        Ok(child) => child,
        Err(err) => return failed(format!("cannot start the test: {err}"), Printed::default()),
    };
    test.children.register(child.id());
    let output =
        Output::capture(child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let pid = child.id();
    let status = wait(child, test.timeout);
    // Output still open after the process ended: a child it left holds it, and goes with it.
    let leaked = matches!(status, Ok(Some(_))) && !output.ended_within(test.leak_timeout);
    test.children.unregister(pid);
    let status = match status {
        Ok(Some((status, used))) => {
            *usage = Some(used);
            status
        }
        Ok(None) => {
            let after = test.timeout.unwrap_or_default();
            return (Outcome::TimedOut { after }, output.take_all(Duration::from_secs(5)));
        }
        Err(err) => return failed(err.to_string(), Printed::default()),
    };
    let printed = output.take_all(Duration::from_secs(5));
    if status.success() {
        // A name that matched nothing runs nothing and still exits 0.
        if String::from_utf8_lossy(&printed.stdout).contains("running 0 tests") {
            return failed("the binary ran no test of this name".to_owned(), printed);
        }
        if leaked {
            let reason = format!(
                "a process it started held its output open {} after it ended; it was killed",
                prun::time::pretty(test.leak_timeout)
            );
            return (Outcome::Leaked { reason }, printed);
        }
        return (Outcome::Passed, printed);
    }
    match status.code() {
        Some(101) => failed("the test failed".to_owned(), printed),
        _ => (Outcome::Crashed { reason: status::describe(status, &printed.stderr) }, printed),
    }
}

/// Waits for the child, at most `timeout`; `None` means it was killed (with its process group)
/// for running past it.
fn wait(
    child: TestProcess,
    timeout: Option<Duration>,
) -> std::io::Result<Option<(ExitStatus, Usage)>> {
    let Some(limit) = timeout else { return crate::os::reap(child).map(Some) };
    let pid = child.id();
    let (send, reaped) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(crate::os::reap(child)));
    match reaped.recv_timeout(limit) {
        Ok(result) => result.map(Some),
        Err(_) => {
            // Its group, not its pid: the group outlives a reaped leader, a pid may not.
            super::children::kill_group(pid);
            reaped.recv().map_err(std::io::Error::other)??;
            Ok(None)
        }
    }
}
