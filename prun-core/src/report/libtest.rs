//! libtest's output, in its three formats (`pretty`, `terse`, `json`), so that a prun binary
//! reads like any other test binary to people and to tools. prun adds only what libtest has
//! no word for: retries, flaky passes and timeouts.

use std::fs::File;
use std::io::{self, IsTerminal, Write};

use libtest_mimic::{Arguments, ColorSetting, FormatSetting};
use serde_json::json;

use super::Summary;
use crate::event::Attempt;
use crate::outcome::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pretty,
    Terse,
    Json,
}

pub(crate) struct Printer {
    out: Box<dyn Write + Send>,
    format: Format,
    color: bool,
    show_output: bool,
    /// Characters on the current terse line.
    terse_column: usize,
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer").field("format", &self.format).finish_non_exhaustive()
    }
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

impl Printer {
    pub(crate) fn new(args: &Arguments) -> io::Result<Printer> {
        let format = match (args.quiet, args.format) {
            (true, _) | (_, Some(FormatSetting::Terse)) => Format::Terse,
            (_, Some(FormatSetting::Json)) => Format::Json,
            _ => Format::Pretty,
        };
        let (out, is_terminal): (Box<dyn Write + Send>, bool) = match &args.logfile {
            Some(path) => (Box::new(File::create(path)?), false),
            None => (Box::new(io::stdout()), io::stdout().is_terminal()),
        };
        let color = crate::color::enabled(
            match args.color.unwrap_or_default() {
                ColorSetting::Always => crate::color::Choice::Always,
                ColorSetting::Never => crate::color::Choice::Never,
                ColorSetting::Auto => crate::color::Choice::Auto,
            },
            is_terminal,
        );
        Ok(Printer {
            out,
            format,
            color: color && format != Format::Json,
            show_output: args.show_output || args.nocapture,
            terse_column: 0,
        })
    }

    /// `--list`: `name: test` lines, and in pretty format the count after them.
    pub(crate) fn list<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> io::Result<()> {
        let mut count = 0;
        for name in names {
            writeln!(self.out, "{name}: test")?;
            count += 1;
        }
        if self.format == Format::Pretty {
            let s = if count == 1 { "" } else { "s" };
            writeln!(self.out, "\n{count} test{s}, 0 benchmarks")?;
        }
        self.out.flush()
    }

    pub(crate) fn run_started(&mut self, tests: usize) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.json(json!({ "type": "suite", "event": "started", "test_count": tests }))
            }
            _ => {
                let s = if tests == 1 { "" } else { "s" };
                writeln!(self.out, "\nrunning {tests} test{s}")
            }
        }
    }

    pub(crate) fn ignored(&mut self, name: &str, reason: Option<&str>) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let mut event = json!({ "type": "test", "event": "ignored", "name": name });
                if let Some(reason) = reason {
                    event["message"] = reason.into();
                }
                self.json(event)
            }
            Format::Terse => self.terse('i', YELLOW),
            Format::Pretty => {
                let word = self.paint("ignored", YELLOW);
                match reason {
                    Some(reason) => writeln!(self.out, "test {name} ... {word}, {reason}"),
                    None => writeln!(self.out, "test {name} ... {word}"),
                }
            }
        }
    }

    pub(crate) fn started(&mut self, name: &str, attempt: u32, worker: usize) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(json!({
                "type": "test",
                "event": "started",
                "name": name,
                "attempt": attempt,
                "worker": worker,
            })),
            _ => Ok(()),
        }
    }

    pub(crate) fn finished(&mut self, attempt: &Attempt) -> io::Result<()> {
        let name = &*attempt.name;
        match self.format {
            Format::Json => {
                let event = match (&attempt.result, attempt.will_retry) {
                    (Ok(()), _) => "ok",
                    (Err(_), true) => "retry",
                    (Err(Failure::TimedOut(_)), false) => "timeout",
                    (Err(_), false) => "failed",
                };
                let mut line = json!({
                    "type": "test",
                    "event": event,
                    "name": name,
                    "exec_time": attempt.duration.as_secs_f64(),
                    "attempt": attempt.attempt,
                    "worker": attempt.worker,
                });
                if attempt.result.is_ok() && attempt.attempt > 1 {
                    line["flaky"] = true.into();
                }
                if let Err(failure) = &attempt.result {
                    line["stdout"] = failure_text(&attempt.output, failure).into();
                }
                self.json(line)
            }
            Format::Terse => match (&attempt.result, attempt.will_retry) {
                (_, true) => Ok(()),
                (Ok(()), _) => self.terse('.', GREEN),
                (Err(_), _) => self.terse('F', RED),
            },
            Format::Pretty => {
                let status = match (&attempt.result, attempt.will_retry) {
                    (Ok(()), _) if attempt.attempt > 1 => {
                        format!(
                            "{} (flaky: passed on attempt {})",
                            self.paint("ok", GREEN),
                            attempt.attempt
                        )
                    }
                    (Ok(()), _) => self.paint("ok", GREEN),
                    (Err(_), true) => {
                        format!(
                            "{} (attempt {} failed)",
                            self.paint("retrying", YELLOW),
                            attempt.attempt
                        )
                    }
                    (Err(Failure::TimedOut(after)), false) => {
                        format!(
                            "{} (after {})",
                            self.paint("TIMED OUT", RED),
                            crate::time::pretty(*after)
                        )
                    }
                    (Err(_), false) => self.paint("FAILED", RED),
                };
                writeln!(self.out, "test {name} ... {status}")
            }
        }
    }

    pub(crate) fn run_finished(&mut self, summary: &Summary) -> io::Result<()> {
        if self.format == Format::Json {
            let event = if summary.ok() { "ok" } else { "failed" };
            return self.json(json!({
                "type": "suite",
                "event": event,
                "passed": summary.passed,
                "failed": summary.failed,
                "ignored": summary.ignored,
                "measured": 0,
                "filtered_out": summary.filtered_out,
                "flaky": summary.flaky.len(),
                "exec_time": summary.duration.as_secs_f64(),
            }));
        }
        if self.format == Format::Terse && self.terse_column > 0 {
            writeln!(self.out)?;
        }
        if self.show_output && !summary.successes.is_empty() {
            writeln!(self.out, "\nsuccesses:\n")?;
            for attempt in &summary.successes {
                let output = attempt.output.trim_end();
                writeln!(self.out, "---- {} stdout ----\n{output}\n", attempt.name)?;
            }
            writeln!(self.out, "successes:")?;
            for attempt in &summary.successes {
                writeln!(self.out, "    {}", attempt.name)?;
            }
        }
        if !summary.failures.is_empty() {
            writeln!(self.out, "\nfailures:\n")?;
            for attempt in &summary.failures {
                let failure = attempt.result.as_ref().expect_err("failures hold failed attempts");
                let text = failure_text(&attempt.output, failure);
                writeln!(self.out, "---- {} stdout ----\n{text}\n", attempt.name)?;
            }
            writeln!(self.out, "failures:")?;
            for attempt in &summary.failures {
                writeln!(self.out, "    {}", attempt.name)?;
            }
        }
        if !summary.flaky.is_empty() {
            let n = summary.flaky.len();
            let s = if n == 1 { "" } else { "s" };
            writeln!(self.out, "\nflaky: {n} test{s} passed after failing first")?;
            for (name, attempts) in &summary.flaky {
                writeln!(self.out, "    {name} ({attempts} attempts)")?;
            }
        }
        let verdict =
            if summary.ok() { self.paint("ok", GREEN) } else { self.paint("FAILED", RED) };
        writeln!(
            self.out,
            "\ntest result: {verdict}. {} passed; {} failed; {} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
            summary.passed,
            summary.failed,
            summary.ignored,
            summary.filtered_out,
            summary.duration.as_secs_f64(),
        )?;
        self.out.flush()
    }

    fn paint(&self, word: &str, color: &str) -> String {
        if self.color { format!("{color}{word}{RESET}") } else { word.to_owned() }
    }

    fn terse(&mut self, mark: char, color: &str) -> io::Result<()> {
        if self.terse_column == 88 {
            writeln!(self.out)?;
            self.terse_column = 0;
        }
        self.terse_column += 1;
        let mark = self.paint(&mark.to_string(), color);
        write!(self.out, "{mark}")?;
        self.out.flush()
    }

    fn json(&mut self, event: serde_json::Value) -> io::Result<()> {
        writeln!(self.out, "{event}")
    }
}

/// What a failed test printed (its panic and log lines), then why it failed when the output
/// does not already say so.
fn failure_text(output: &str, failure: &Failure) -> String {
    let mut text = output.trim_end().to_owned();
    if *failure != Failure::Panicked {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&failure.describe());
    }
    text
}
