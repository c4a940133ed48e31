//! `cargo prun bisect TEST`: finds the tests that make TEST fail when they run before it.
//!
//! The candidates are the tests that were beside TEST when it last failed only in parallel
//! (from the history), else every other selected test. Bisection runs halves of them and then
//! TEST, one after another (tests of TEST's binary in one process with it, as in the run),
//! and keeps the half that still makes it fail. `--with NAME...` replays one such probe.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

use crate::cli::BisectArgs;
use crate::execute::ProcessExecutor;
use crate::plan::{self, Plan, Selection};
use crate::run_dir::RunDir;
use crate::{exit, prepare};

pub(crate) fn bisect(args: &BisectArgs) -> Result<i32, String> {
    let workspace = match prepare::prepare(&args.build, None, None) {
        Ok(workspace) => workspace,
        Err(result) => return result,
    };
    let history = workspace.history.load();
    let options = plan::Options { retries: Some(0), order: plan::Order::Declared };
    let selection = Selection { include_ignored: true, ..Selection::default() };
    let plan =
        plan::plan(&workspace.binaries, &selection, options, &workspace.config, 1, &HashMap::new())
            .map_err(|err| err.to_string())?;
    let target = find(&plan, &workspace.binaries, &args.test)?;
    let target_id = plan.tests[target].id(&workspace.binaries);
    let candidates: Vec<usize> = if !args.with.is_empty() {
        args.with
            .iter()
            .map(|name| find(&plan, &workspace.binaries, name))
            .collect::<Result<_, _>>()?
    } else {
        let recorded: Vec<usize> = history
            .get(&target_id)
            .map(|test| {
                test.neighbours
                    .iter()
                    .filter_map(|id| find(&plan, &workspace.binaries, id).ok())
                    .collect()
            })
            .unwrap_or_default();
        if recorded.is_empty() {
            (0..plan.tests.len()).filter(|&t| t != target).collect()
        } else {
            recorded
        }
    };

    let run_dir = RunDir::new()?;
    let (events, _ignored) = mpsc::channel();
    let executor = ProcessExecutor::new(
        workspace.binaries,
        plan.tests,
        plan.jobs,
        run_dir.path().to_owned(),
        run_dir.id.clone(),
        Vec::new(),
        workspace.dylib_path,
        events,
        None,
        Instant::now(),
    );
    let names =
        |tests: &[usize]| -> Vec<String> { tests.iter().map(|&t| executor.id(t)).collect() };
    if executor.fails(&[], target) {
        println!("{target_id} fails when run alone: it is broken by itself, not by its company");
        return Ok(exit::TESTS_FAILED);
    }
    if !args.with.is_empty() {
        let fails = executor.fails(&candidates, target);
        let verdict = if fails { "fails" } else { "passes" };
        println!("{target_id} {verdict} when run after: {}", names(&candidates).join(", "));
        return Ok(if fails { exit::TESTS_FAILED } else { exit::OK });
    }
    eprintln!("bisecting {target_id} over {} candidates", candidates.len());
    match executor.bisect(target, &candidates) {
        Some(culprits) => {
            println!("{target_id} fails when run after: {}", names(&culprits).join(", "));
            let build_args = args.build.to_cargo_args();
            println!("reproduce: {}", command(&build_args, &target_id, &names(&culprits)));
            Ok(exit::OK)
        }
        None => {
            println!(
                "{target_id} passes after all {} candidates ran before it, one after another: \
                 what breaks it is timing (running at the same moment), not state left behind",
                candidates.len()
            );
            Ok(1)
        }
    }
}

/// The command that bisects `target` (with no culprits) or replays a culprit set, with the
/// cargo flags (`build_args`) that select the workspace's tests.
pub(crate) fn command(build_args: &[String], target: &str, culprits: &[String]) -> String {
    let mut command = vec!["cargo", "prun", "bisect"];
    command.extend(build_args.iter().map(String::as_str));
    command.push(target);
    for culprit in culprits {
        command.extend(["--with", culprit.as_str()]);
    }
    // A name with a NUL byte cannot be quoted: it cannot be typed either.
    shlex::try_join(command.iter().copied()).unwrap_or_else(|_| command.join(" "))
}

/// A test by its name or by `BINARY NAME`; a name in two binaries must be given with its binary.
fn find(plan: &Plan, binaries: &[crate::discover::Binary], wanted: &str) -> Result<usize, String> {
    let hits: Vec<usize> = (0..plan.tests.len())
        .filter(|&t| plan.tests[t].name == wanted || plan.tests[t].id(binaries) == wanted)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no test is named {wanted:?} (`cargo prun --list` lists them)")),
        many => Err(format!(
            "{wanted:?} names {} tests; give one as `BINARY NAME`: {}",
            many.len(),
            many.iter().map(|&t| plan.tests[t].id(binaries)).collect::<Vec<_>>().join(", ")
        )),
    }
}
