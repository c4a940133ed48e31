//! For people: one line per finished test, the failures with their output, and a summary that
//! ends with `N passed, M failed`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use prun::protocol::TestId;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CollisionKind, Finished, Fix, Outcome, ParallelOnly, Reporter, Summary};
use crate::cli::{StatusLevel, TestOutput};

/// What the human output shows, and when: nextest's `--status-level`, `--final-status-level`,
/// `--failure-output` and `--success-output`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown {
    pub(crate) status_level: StatusLevel,
    pub(crate) final_status_level: StatusLevel,
    pub(crate) failure_output: TestOutput,
    pub(crate) success_output: TestOutput,
}

impl Shown {
    /// The level of a finished attempt's line: it is shown when the status level reaches it.
    fn level(finished: &Finished) -> StatusLevel {
        match &finished.outcome {
            _ if finished.will_retry => StatusLevel::Retry,
            Outcome::Passed if finished.attempt > 1 => StatusLevel::Flaky,
            Outcome::Passed => StatusLevel::Pass,
            Outcome::Leaked { .. } => StatusLevel::Leak,
            Outcome::Skipped { .. } | Outcome::NotRun { .. } => StatusLevel::Skip,
            Outcome::Failed { .. } | Outcome::TimedOut { .. } | Outcome::Crashed { .. } => {
                StatusLevel::Fail
            }
        }
    }
}

pub(crate) struct Human {
    out: Box<dyn Write + Send>,
    color: bool,
    /// What is shown, and when (`--status-level`, `--failure-output`, ...).
    shown: Shown,
    /// Passing tests whose output is shown at the end (`--success-output final`).
    passing_output: Vec<Finished>,
    /// The live line at the bottom of a terminal; `None` when not drawing one.
    progress: Option<ProgressBar>,
    /// What each worker slot runs now, and since when (a slot runs one test at a time).
    running: HashMap<usize, (String, Instant)>,
    /// Tests to run (from `started`), for `done/total` in the progress line.
    total: usize,
    passed: usize,
    failed: usize,
    /// Why tests were not run (the run stopped), shown once in the summary.
    not_run_reason: Option<String>,
    /// Why tests skipped themselves, and how many did (shown once each in the summary).
    skip_reasons: Vec<(String, usize)>,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Human {
    pub(crate) fn new(
        out: Box<dyn Write + Send>,
        color: bool,
        shown: Shown,
        progress: bool,
    ) -> Human {
        let progress = progress.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} {msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Human {
            out,
            color,
            shown,
            passing_output: Vec::new(),
            progress,
            running: HashMap::new(),
            total: 0,
            passed: 0,
            failed: 0,
            skip_reasons: Vec::new(),
            not_run_reason: None,
        }
    }

    /// Writes a line above the progress line.
    fn line(&mut self, text: &str) {
        match &self.progress {
            Some(bar) => bar.suspend(|| writeln!(self.out, "{text}")).unwrap_or(()),
            None => writeln!(self.out, "{text}").unwrap_or(()),
        }
    }

    fn update_progress(&self) {
        if let Some(bar) = &self.progress {
            let now = Instant::now();
            let running = self.running.values().map(|(test, at)| (test.clone(), now - *at));
            let done = (self.passed + self.failed, self.total);
            bar.set_message(progress_message(done, self.passed, self.failed, running.collect()));
        }
    }

    fn paint(&self, text: &str, color: &str) -> String {
        if self.color { format!("{color}{text}{RESET}") } else { text.to_owned() }
    }

    fn status(&self, finished: &Finished) -> String {
        let (word, color) = match (&finished.outcome, finished.will_retry) {
            (_, true) => ("RETRY", YELLOW),
            (Outcome::Passed, _) if finished.attempt > 1 => ("FLAKY", YELLOW),
            (Outcome::Passed, _) => ("PASS", GREEN),
            (Outcome::Failed { .. }, _) => ("FAIL", RED),
            (Outcome::TimedOut { .. }, _) => ("TIMEOUT", RED),
            (Outcome::Crashed { .. }, _) => ("CRASH", RED),
            (Outcome::Leaked { .. }, _) => ("LEAK", YELLOW),
            (Outcome::Skipped { .. }, _) => ("SKIP", YELLOW),
            (Outcome::NotRun { .. }, _) => ("NOT RUN", YELLOW),
        };
        self.paint(&format!("{word:>7}"), color)
    }

    /// `   PASS [   0.012s] BINARY NAME`, and how it went when that is not all.
    fn status_line(&self, finished: &Finished) -> String {
        let status = self.status(finished);
        let mut line = format!(
            "{status} [{:>8.3}s] {} {}",
            finished.duration.as_secs_f64(),
            finished.binary,
            shown(&finished.name)
        );
        match (&finished.outcome, finished.will_retry) {
            (Outcome::Passed, _) if finished.attempt > 1 => {
                line.push_str(&format!(" (passed on attempt {})", finished.attempt))
            }
            (Outcome::Passed, _) => {}
            (outcome, true) => {
                line.push_str(&format!(" (attempt {} {})", finished.attempt, outcome.reason()))
            }
            (Outcome::Failed { .. }, _) => {}
            (outcome, _) => line.push_str(&format!(" ({})", outcome.reason())),
        }
        if finished.quarantined && !finished.passed && !finished.will_retry {
            line.push_str(" [quarantined: does not fail the run]");
        }
        line
    }

    fn section(&mut self, title: &str, text: &str) {
        let text = text.trim_end();
        if !text.is_empty() {
            self.line(&format!("--- {title}:\n{text}"));
        }
    }

    fn output(&mut self, finished: &Finished) {
        self.section("panic and log", &finished.captured);
        self.section("stdout", &finished.stdout);
        self.section("stderr", &finished.stderr);
    }

    /// A failure's title and what it printed: where it happens (a long CI log shows it there),
    /// and again in the summary, as nextest does.
    fn failure(&mut self, failure: &Finished) {
        let title = self.paint(
            &format!("--- {}: {} {}", failure.outcome_word(), failure.binary, shown(&failure.name)),
            RED,
        );
        self.line(&format!("\n{title} ({})", failure.outcome.reason()));
        self.output(failure);
    }
}

impl Reporter for Human {
    fn test_started(&mut self, binary: &str, name: &str, worker: usize, running_for: Duration) {
        let since = Instant::now().checked_sub(running_for).unwrap_or_else(Instant::now);
        self.running.insert(worker, (format!("{binary} {}", shown(name)), since));
        self.update_progress();
    }

    fn slow(&mut self, binary: &str, name: &str, running: Duration) {
        if self.shown.status_level < StatusLevel::Slow {
            return;
        }
        let word = self.paint("   SLOW", YELLOW);
        self.line(&format!("{word} [> {:>6.3}s] {binary} {name}", running.as_secs_f64()));
    }

    fn started(&mut self, tests: usize, binaries: usize, skipped: usize) {
        self.total = tests;
        let s = if tests == 1 { "" } else { "s" };
        let binaries_word = if binaries == 1 { "binary" } else { "binaries" };
        let skipped = if skipped > 0 { format!(" ({skipped} skipped)") } else { String::new() };
        let _ = writeln!(
            self.out,
            "{} {tests} test{s} across {binaries} {binaries_word}{skipped}",
            self.paint("Starting", BOLD)
        );
    }

    fn finished(&mut self, finished: &Finished) {
        if let Outcome::NotRun { reason } = &finished.outcome {
            // Said once, in the summary: not a line per test.
            self.not_run_reason.get_or_insert_with(|| reason.clone());
            let name = shown(&finished.name);
            let test = TestId { binary: &finished.binary, name: &name };
            self.running.retain(|_, (running, _)| !test.is(running));
            self.update_progress();
            return;
        }
        let name = shown(&finished.name);
        let test = TestId { binary: &finished.binary, name: &name };
        if self.running.get(&finished.worker).is_some_and(|(running, _)| test.is(running)) {
            self.running.remove(&finished.worker);
        }
        if let Outcome::Skipped { reason } = &finished.outcome
            && !finished.will_retry
        {
            match self.skip_reasons.iter_mut().find(|(known, _)| known == reason) {
                Some((_, count)) => *count += 1,
                None => self.skip_reasons.push((reason.clone(), 1)),
            }
        }
        if !finished.will_retry {
            if finished.passed { self.passed += 1 } else { self.failed += 1 }
        }
        if Shown::level(finished) <= self.shown.status_level {
            let line = self.status_line(finished);
            self.line(&line);
        }
        self.update_progress();
        if finished.passed && !finished.will_retry {
            if self.shown.success_output.immediate() {
                self.output(finished);
            }
            if self.shown.success_output.at_the_end() {
                self.passing_output.push(finished.clone());
            }
        }
        if !finished.passed && !finished.will_retry && self.shown.failure_output.immediate() {
            self.failure(finished);
        }
    }

    fn rerunning(&mut self, tests: usize, bisect_within: Option<Duration>) {
        let tests =
            if tests == 1 { "1 failed test".to_owned() } else { format!("{tests} failed tests") };
        self.line(&format!(
            "\n{} {tests} alone, to tell failures that happen only beside other tests from the rest (--no-rerun-alone skips this)",
            self.paint("Rerunning", BOLD)
        ));
        if let Some(budget) = bisect_within {
            self.line(&format!(
                "  --bisect: each that fails only in parallel is then bisected, within {} at the same moment",
                prun::time::pretty(budget)
            ));
        }
    }

    fn parallel_only(&mut self, found: &ParallelOnly) {
        let word = self.paint("  ALONE", YELLOW);
        self.line(&format!("{word} {} {}: {}", found.binary, shown(&found.name), found.reason()));
    }

    fn done(&mut self, summary: &Summary) {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        for passing in std::mem::take(&mut self.passing_output) {
            let title = format!("--- PASS: {} {}", passing.binary, shown(&passing.name));
            self.line(&format!("\n{}", self.paint(&title, GREEN)));
            self.output(&passing);
        }
        if self.shown.failure_output.at_the_end() && !summary.failures.is_empty() {
            let again = if self.shown.failure_output.immediate() {
                "Failures, again:"
            } else {
                "Failures:"
            };
            self.line(&format!("\n{}", self.paint(again, BOLD)));
            for failure in &summary.failures {
                self.failure(failure);
            }
        }
        let _ = writeln!(self.out, "------------");
        let ran = summary.passed + summary.failed;
        let _ = writeln!(
            self.out,
            "{} [{:>8.3}s] {ran} {} run",
            self.paint("Summary", BOLD),
            summary.duration.as_secs_f64(),
            if ran == 1 { "test" } else { "tests" }
        );
        let flaky_listed = self.shown.final_status_level >= StatusLevel::Flaky;
        for (binary, name, attempts) in summary.flaky.iter().filter(|_| flaky_listed) {
            let name = shown(name);
            let _ = writeln!(
                self.out,
                "  {} {binary} {name} (passed on attempt {attempts})",
                self.paint("FLAKY", YELLOW)
            );
        }
        let failures_listed = self.shown.final_status_level >= StatusLevel::Fail;
        for failure in summary.failures.iter().filter(|_| failures_listed) {
            let _ = writeln!(
                self.out,
                "  {} {} {}",
                self.status(failure),
                failure.binary,
                shown(&failure.name)
            );
        }
        for (binary, name) in &summary.quarantined {
            let name = shown(name);
            let _ = writeln!(
                self.out,
                "  {} {binary} {name} (failed; quarantined in prun.toml, so the run does not fail)",
                self.paint("QUARANTINED", YELLOW)
            );
        }
        // Diagnosed flaky first, then parallel-only, each with the evidence behind it.
        let mut diagnosed: Vec<&ParallelOnly> = summary.parallel_only.iter().collect();
        diagnosed.sort_by_key(|found| !found.forgiven());
        for found in diagnosed {
            let word = match (found.under_load, found.flaky) {
                (true, _) => "UNDER-LOAD",
                (_, true) => "FLAKY",
                _ => "PARALLEL-ONLY",
            };
            let word = self.paint(word, YELLOW);
            let _ = writeln!(
                self.out,
                "  {word} {} {}: {}",
                found.binary,
                shown(&found.name),
                found.reason()
            );
            if found.under_load {
                let _ = writeln!(
                    self.out,
                    "    later runs give it a core of its own and admit no extra tests while it runs; --fail-on-flaky fails the run for it"
                );
                continue;
            }
            if found.flaky {
                let _ = writeln!(self.out, "    with: {}", list(&found.neighbours));
                let _ = writeln!(
                    self.out,
                    "    retry it: --retries N (or retries in prun.toml) reports it FLAKY and passes the run"
                );
                continue;
            }
            if !found.neighbours.is_empty() {
                let _ = writeln!(self.out, "    beside it: {}", list(&found.neighbours));
            }
            let id = found.id();
            match &found.culprits {
                Some(culprits) if !culprits.is_empty() => {
                    let how = match found.collision {
                        Some(CollisionKind::SameMoment) => {
                            "fails while they run at the same moment"
                        }
                        _ => "fails when run after",
                    };
                    let _ = writeln!(self.out, "    {how}: {}", culprits.join(", "));
                    if let Some(kind) = found.collision {
                        let _ = writeln!(self.out, "    kind: {}", kind.said());
                    }
                    if let Some(trials) = &found.trials {
                        let _ = writeln!(
                            self.out,
                            "    trials: {} ({} runs beside the suspects, {} failed)",
                            trials.trials, trials.runs, trials.failures
                        );
                    }
                    let replay = found
                        .reproduce
                        .clone()
                        .unwrap_or_else(|| crate::diagnose::command(&[], &id, culprits));
                    let _ = writeln!(self.out, "    reproduce: {replay}");
                    for line in found.fix.iter().flat_map(Fix::lines) {
                        let _ = writeln!(self.out, "    fix: {line}");
                    }
                }
                Some(_) => {
                    let runs = found.trials.as_ref().map_or(0, |t| t.runs);
                    let _ = writeln!(
                        self.out,
                        "    bisect: no culprit: it passed after them and in {runs} runs beside them (a collision showing in 1 of 10 runs would have shown with probability {:.2})",
                        crate::report::Trials::confidence(runs)
                    );
                }
                None => {
                    let bisect = crate::diagnose::command(&[], &id, &[]);
                    let _ =
                        writeln!(self.out, "    find the culprit: {bisect} (or run with --bisect)");
                }
            }
        }
        if !summary.rates.is_empty() {
            let failing: Vec<(&String, &(u32, u32))> =
                summary.rates.iter().filter(|(_, (_, failed))| *failed > 0).collect();
            let runs = summary.rates.values().map(|(runs, _)| runs).max().unwrap_or(&0);
            let _ = writeln!(
                self.out,
                "  repeated: {} tests, up to {runs} runs each; {} failed at least once",
                summary.rates.len(),
                failing.len()
            );
            for (id, (runs, failed)) in failing {
                let rate = f64::from(*failed) / f64::from((*runs).max(1)) * 100.0;
                let _ = writeln!(self.out, "    {id}: failed {failed} of {runs} runs ({rate:.0}%)");
            }
        }
        for hint in &summary.hints {
            let _ = writeln!(self.out, "  {} {hint}", self.paint("hint:", BOLD));
        }
        for (reason, count) in &self.skip_reasons {
            let tests = if *count == 1 { "test" } else { "tests" };
            let _ =
                writeln!(self.out, "  {} {count} {tests}: {reason}", self.paint("SKIPPED", YELLOW));
        }
        if summary.not_run > 0 {
            let tests = if summary.not_run == 1 { "test" } else { "tests" };
            let why = self.not_run_reason.as_deref().unwrap_or("the run stopped early");
            let _ = writeln!(self.out, "  {} {tests} not run: {why}", summary.not_run);
        }
        if summary.interrupted {
            let _ =
                writeln!(self.out, "  interrupted: the tests that had not finished were stopped");
        }
        if !summary.doctests_run && !summary.doctests_unavailable {
            let _ = writeln!(
                self.out,
                "  doctests: not run (prun.toml: doctests = \"run\" runs them too; --doc runs only them)"
            );
        }
        let mut last = format!("{} passed, {} failed", summary.passed, summary.failed);
        if summary.skipped > 0 {
            last.push_str(&format!(", {} skipped", summary.skipped));
        }
        let _ = writeln!(self.out, "{last}");
        let _ = self.out.flush();
    }
}

/// The first few of a list of tests, and how many more.
fn list(tests: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = tests.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if tests.len() > SHOWN {
        text.push_str(&format!(" and {} more", tests.len() - SHOWN));
    }
    text
}

impl Finished {
    fn outcome_word(&self) -> &'static str {
        match self.outcome {
            Outcome::TimedOut { .. } => "TIMEOUT",
            Outcome::Crashed { .. } => "CRASH",
            _ => "FAIL",
        }
    }
}

/// A test's name as a line can hold it: one with a newline or another control character is
/// shown escaped (`a\nb`); JSON and JUnit keep it as it is.
fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        std::borrow::Cow::Owned(name.escape_debug().to_string())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// `12 passed, 1 failed, 2 running: slowest shop::api sync (4.2s), shop::api load (1.0s)`.
fn progress_message(
    (done, total): (usize, usize),
    passed: usize,
    failed: usize,
    mut running: Vec<(String, Duration)>,
) -> String {
    running.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut message =
        format!("{done}/{total}: {passed} passed, {failed} failed, {} running", running.len());
    if !running.is_empty() {
        let slowest: Vec<String> = running
            .iter()
            .take(2)
            .map(|(name, for_how_long)| format!("{name} ({:.1}s)", for_how_long.as_secs_f64()))
            .collect();
        message.push_str(&format!(": slowest {}", slowest.join(", ")));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_names_the_slowest_running_tests() {
        let running = vec![
            ("a quick".to_owned(), Duration::from_millis(100)),
            ("a slow".to_owned(), Duration::from_millis(4200)),
            ("a middling".to_owned(), Duration::from_millis(1000)),
        ];
        assert_eq!(
            progress_message((13, 20), 12, 1, running),
            "13/20: 12 passed, 1 failed, 3 running: slowest a slow (4.2s), a middling (1.0s)"
        );
        assert_eq!(
            progress_message((3, 3), 3, 0, Vec::new()),
            "3/3: 3 passed, 0 failed, 0 running"
        );
    }
}
