//! For people: one line per finished test, the failures with their output, and a summary that
//! ends with `N passed, M failed`.

use std::io::Write;

use super::{Finished, Outcome, Reporter, Summary};

pub(crate) struct Human {
    out: Box<dyn Write + Send>,
    color: bool,
    /// Show passing tests' output too (`--no-capture`).
    show_output: bool,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Human {
    pub(crate) fn new(out: Box<dyn Write + Send>, color: bool, show_output: bool) -> Human {
        Human { out, color, show_output }
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
            (Outcome::Skipped { .. }, _) => ("SKIP", YELLOW),
        };
        self.paint(&format!("{word:>7}"), color)
    }

    fn section(&mut self, title: &str, text: &str) {
        let text = text.trim_end();
        if !text.is_empty() {
            let _ = writeln!(self.out, "--- {title}:\n{text}");
        }
    }

    fn output(&mut self, finished: &Finished) {
        self.section("panic and log", &finished.captured);
        self.section("stdout", &finished.stdout);
        self.section("stderr", &finished.stderr);
    }
}

impl Reporter for Human {
    fn started(&mut self, tests: usize, binaries: usize, skipped: usize) {
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
        let status = self.status(finished);
        let mut line = format!(
            "{status} [{:>8.3}s] {} {}",
            finished.duration.as_secs_f64(),
            finished.binary,
            finished.name
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
        let _ = writeln!(self.out, "{line}");
        if self.show_output && finished.passed {
            self.output(finished);
        }
    }

    fn done(&mut self, summary: &Summary) {
        for failure in &summary.failures {
            let title = self.paint(
                &format!("--- {}: {} {}", failure.outcome_word(), failure.binary, failure.name),
                RED,
            );
            let _ = writeln!(self.out, "\n{title} ({})", failure.outcome.reason());
            self.output(failure);
        }
        let _ = writeln!(self.out, "------------");
        let _ = writeln!(
            self.out,
            "{} [{:>8.3}s] {} tests run",
            self.paint("Summary", BOLD),
            summary.duration.as_secs_f64(),
            summary.passed + summary.failed
        );
        for (binary, name, attempts) in &summary.flaky {
            let _ = writeln!(
                self.out,
                "  {} {binary} {name} (passed on attempt {attempts})",
                self.paint("FLAKY", YELLOW)
            );
        }
        for failure in &summary.failures {
            let _ = writeln!(
                self.out,
                "  {} {} {}",
                self.status(failure),
                failure.binary,
                failure.name
            );
        }
        if summary.interrupted {
            let _ =
                writeln!(self.out, "  interrupted: the tests that had not finished were stopped");
        }
        let _ = writeln!(
            self.out,
            "  doctests: not run by cargo prun; run them with `cargo test --doc`"
        );
        let mut last = format!("{} passed, {} failed", summary.passed, summary.failed);
        if summary.skipped > 0 {
            last.push_str(&format!(", {} skipped", summary.skipped));
        }
        let _ = writeln!(self.out, "{last}");
        let _ = self.out.flush();
    }
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
