//! `cargo prun bisect TEST`: finds the tests that make TEST fail, when they run before it
//! (state left behind) or beside it (at the same moment).
//!
//! The candidates are the tests that were beside TEST when it last failed only in parallel
//! (from the history), else every other selected test. Bisection first runs halves of them and
//! then TEST, one after another (tests of TEST's binary in one process with it, as in the run),
//! and keeps the half that still makes it fail. When TEST passes after all of them, it runs
//! them beside TEST instead, in trials repeated enough to tell a collision from chance, and
//! halves those. `--with NAME...` replays one probe; `--beside` replays it at the same moment.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

use super::{Diagnosis, Replay};
use crate::cli::BisectArgs;
use crate::event::{CollisionKind, Trials};
use crate::execute::ProcessExecutor;
use crate::plan::{self, Plan, Selection};
use crate::run_dir::RunDir;
use crate::{exit, prepare};

/// Why a bisection could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Boxed: the largest error, and a rare one.
    #[error(transparent)]
    Prepare(Box<prepare::Error>),
    #[error(transparent)]
    Plan(#[from] prun::config::UnknownCategory),
    #[error("no test is named {0:?} (`cargo prun --list` lists them)")]
    NoSuchTest(String),
    #[error("{wanted:?} names {} tests; give one as `BINARY NAME`: {}", ids.len(), ids.join(", "))]
    Ambiguous { wanted: String, ids: Vec<String> },
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::Error),
}

impl From<prepare::Error> for Error {
    fn from(error: prepare::Error) -> Error {
        Error::Prepare(Box::new(error))
    }
}

pub(crate) fn bisect(args: &BisectArgs) -> Result<i32, Error> {
    let workspace = prepare::prepare(&args.build, None, None)?;
    let history = workspace.history.load();
    let options =
        plan::Options { retries: Some(0), order: plan::Order::Declared, ..Default::default() };
    let filter = prun::plan::Filter { ignored: prun::plan::Ignored::Include, ..Default::default() };
    let selection = Selection { filter, ..Selection::default() };
    let plan = plan::plan(
        &workspace.binaries,
        &selection,
        options,
        &workspace.config,
        1,
        &HashMap::new(),
    )?;
    let target = find(&plan, &args.test)?;
    let target_id = plan.tests[target].id().to_owned();
    let everyone: Vec<usize> = (0..plan.tests.len()).filter(|&t| t != target).collect();
    let mut candidates: Vec<usize> = if !args.with.is_empty() {
        args.with.iter().map(|name| find(&plan, name)).collect::<Result<_, _>>()?
    } else {
        let recorded: Vec<usize> = history
            .get(&target_id)
            .map(|test| test.neighbours.iter().filter_map(|id| find(&plan, id).ok()).collect())
            .unwrap_or_default();
        if recorded.is_empty() { everyone.clone() } else { recorded }
    };

    let run_dir = RunDir::new()?;
    let (events, _ignored) = mpsc::channel();
    let settings = crate::execute::Settings {
        max_fail: None,
        // A leak counts as it did in the run.
        leak_timeout: workspace.config.leak_timeout,
        leak_timeouts: workspace.leak_timeouts,
        ..crate::execute::Settings::new(&run_dir, workspace.dylib_path)
    };
    let planned = (plan.tests, plan.jobs);
    let executor =
        ProcessExecutor::new(workspace.binaries, planned, settings, events, Instant::now());
    let diagnosis = Diagnosis::new(&executor);
    let names =
        |tests: &[usize]| -> Vec<String> { tests.iter().map(|&t| diagnosis.id(t)).collect() };
    if diagnosis.fails(&[], target) {
        println!("{target_id} fails when run alone: it is broken by itself, not by its company");
        return Ok(exit::TESTS_FAILED);
    }
    if !args.with.is_empty() && args.beside {
        let (fails, trials) = diagnosis.replay_beside(&candidates, target);
        let verdict = if fails { "fails" } else { "passes" };
        println!(
            "{target_id} {verdict} while they run at the same moment ({} runs): {}",
            trials.runs,
            names(&candidates).join(", ")
        );
        return Ok(if fails { exit::TESTS_FAILED } else { exit::OK });
    }
    if !args.with.is_empty() {
        let fails = diagnosis.fails(&candidates, target);
        let verdict = if fails { "fails" } else { "passes" };
        println!("{target_id} {verdict} when run after: {}", names(&candidates).join(", "));
        return Ok(if fails { exit::TESTS_FAILED } else { exit::OK });
    }
    eprintln!("bisecting {target_id} over {} candidates", candidates.len());
    let build_args = args.build.to_cargo_args();
    let mut collision = diagnosis.bisect(target, &candidates, Trials::default());
    // The tests beside it in the run first; if none of them is the culprit, every other test.
    if collision.as_ref().is_some_and(|c| c.kind == CollisionKind::NoCulprit)
        && candidates.len() < everyone.len()
    {
        eprintln!(
            "no culprit among the {} tests beside it in the run: bisecting over all {}",
            candidates.len(),
            everyone.len()
        );
        candidates.clone_from(&everyone);
        collision = diagnosis.bisect(target, &candidates, Trials::default());
    }
    let Some(collision) = collision else {
        println!("{target_id} has no candidates to bisect");
        return Ok(1);
    };
    let culprits = names(&collision.culprits);
    match collision.kind {
        CollisionKind::LeftBehind => {
            println!("{target_id} fails when run after: {}", culprits.join(", "));
            println!("kind: {}", collision.kind.said());
            println!("reproduce: {}", command(&build_args, &target_id, &culprits));
        }
        CollisionKind::SameMoment => {
            let trials = collision.trials.clone().unwrap_or_default();
            println!(
                "{target_id} fails while they run at the same moment: {}",
                culprits.join(", ")
            );
            println!("kind: {}", collision.kind.said());
            println!(
                "trials: {} ({} runs of it beside the suspects; each trial at least {} runs and \
                 {} passes of theirs)",
                trials.trials,
                trials.runs,
                Trials::RUNS,
                Trials::PASSES
            );
            println!("reproduce: {}", beside_command(&build_args, &target_id, &culprits));
            println!(
                "or: {}",
                exact_command(&build_args, executor.tests(), target, &collision.culprits)
            );
        }
        CollisionKind::NoCulprit => {
            let runs = collision.trials.as_ref().map_or(0, |t| t.runs);
            println!(
                "{target_id} has no culprit: it passed after all {} candidates ran before it, \
                 and in {runs} runs beside them at the same moment (a collision that shows in 1 \
                 of 10 runs would have shown with probability {:.2}); it may fail under load, \
                 or by itself now and then",
                candidates.len(),
                Trials::confidence(runs)
            );
            return Ok(1);
        }
    }
    if let Some(fix) = diagnosis.fix(target, &collision) {
        for line in fix.lines() {
            println!("fix: {line}");
        }
    }
    Ok(exit::OK)
}

/// The command that replays `culprits` running beside `target` at the same moment.
pub(crate) fn beside_command(build_args: &[String], target: &str, culprits: &[String]) -> String {
    let mut command = self::command(build_args, target, culprits);
    command.push_str(" --beside");
    command
}

/// A plain run of the pair at the same moment, repeated: `cargo prun --exact A B -j N --repeat
/// 30`.
fn exact_command(
    build_args: &[String],
    tests: &[crate::plan::PlannedTest],
    target: usize,
    culprits: &[usize],
) -> String {
    let mut words: Vec<String> = vec!["cargo".into(), "prun".into()];
    words.extend(build_args.iter().cloned());
    words.push("--exact".into());
    words.push(tests[target].name().to_owned());
    words.extend(culprits.iter().map(|&t| tests[t].name().to_owned()));
    words.extend(["-j".into(), (culprits.len() + 1).to_string(), "--repeat".into(), "30".into()]);
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
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
fn find(plan: &Plan, wanted: &str) -> Result<usize, Error> {
    let hits: Vec<usize> = (0..plan.tests.len())
        .filter(|&t| plan.tests[t].name() == wanted || plan.tests[t].id() == wanted)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::NoSuchTest(wanted.to_owned())),
        many => Err(Error::Ambiguous {
            wanted: wanted.to_owned(),
            ids: many.iter().map(|&t| plan.tests[t].id().to_owned()).collect(),
        }),
    }
}
