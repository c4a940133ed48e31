//! Report: everything the user sees is rendered from [`Finished`] events, so every report agrees.

pub(crate) mod document;
pub(crate) mod html;
pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod libtest_json;
pub(crate) mod redact;
pub(crate) mod slow;
pub(crate) mod trace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use prun::Outcome;
use prun::time::millis;

/// The most of one stream a report keeps: its start and its end, 1 MiB each. A test that prints
/// 100 MiB must not make a 100 MiB report (or a terminal full of it).
const KEPT: usize = 1 << 20;

/// What a report keeps of a (redacted) stream longer than 2 MiB: its first and last MiB with a
/// line saying how much was left out between them; `None` when it keeps all of it.
pub(crate) fn kept(text: &str) -> Option<String> {
    if text.len() <= 2 * KEPT {
        return None;
    }
    let head_end = (0..=KEPT).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
    let tail_start =
        (text.len() - KEPT..text.len()).find(|&at| text.is_char_boundary(at)).unwrap_or(text.len());
    let elided = tail_start - head_end;
    Some(format!(
        "{}\n[prun: {:.1} MiB of output left out here]\n{}",
        &text[..head_end],
        elided as f64 / f64::from(1 << 20),
        &text[tail_start..]
    ))
}

/// One attempt of one test, finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Finished {
    pub(crate) binary: String,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) worker: usize,
    pub(crate) passed: bool,
    pub(crate) outcome: Outcome,
    #[serde(rename = "started_at_ms", with = "millis")]
    pub(crate) started_at: Duration,
    #[serde(rename = "duration_ms", with = "millis")]
    pub(crate) duration: Duration,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Panic message and `Ctx` log lines (prun tests).
    pub(crate) captured: String,
    pub(crate) will_retry: bool,
    /// Listed in prun.toml's `quarantine`: reported, but its failure does not fail the run.
    #[serde(default)]
    pub(crate) quarantined: bool,
    /// The groups it held, for the timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
    /// How long it waited in the queue for a busy group, for the timeline.
    #[serde(default, rename = "group_wait_ms", with = "millis")]
    pub(crate) group_wait: Duration,
    /// Which shard's run it came from, in a merged report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shard: Option<String>,
    /// What it used (CPU time, peak memory), where that was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<prun::usage::Usage>,
    /// The test's index in the plan, for the executor's own bookkeeping.
    #[serde(skip)]
    pub(crate) test: Option<usize>,
}

impl Finished {
    /// The first attempt of a test with `outcome`, that ran no time and printed nothing: an
    /// ignored test, or the base of one reported from elsewhere (a doctest).
    pub(crate) fn of(binary: String, name: String, outcome: Outcome) -> Finished {
        Finished {
            binary,
            name,
            attempt: 1,
            worker: 0,
            passed: outcome.passed(),
            outcome,
            started_at: Duration::ZERO,
            duration: Duration::ZERO,
            stdout: String::new(),
            stderr: String::new(),
            captured: String::new(),
            will_retry: false,
            quarantined: false,
            groups: Vec::new(),
            group_wait: Duration::ZERO,
            shard: None,
            usage: None,
            test: None,
        }
    }

    /// Whether the test ran (it was not skipped, ignored or left out when the run stopped).
    pub(crate) fn test_ran(&self) -> bool {
        !matches!(self.outcome, Outcome::Skipped { .. } | Outcome::NotRun { .. })
    }

    /// One word for how the attempt ended, for the trace and the timeline.
    pub(crate) fn outcome_kind(&self) -> &'static str {
        match &self.outcome {
            _ if self.will_retry => "retry",
            Outcome::Passed if self.attempt > 1 => "flaky",
            outcome => outcome.kind(),
        }
    }
}

/// A test that failed in the run and passed when run again alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ParallelOnly {
    pub(crate) binary: String,
    pub(crate) name: String,
    /// It failed in a process that ran other tests before it (a batch or a worker): state one
    /// of them left in the process is the first suspect.
    pub(crate) shared_process: bool,
    /// `BINARY NAME` of the tests that ran beside it, or before it in its process.
    pub(crate) neighbours: Vec<String>,
    /// What `--bisect` found: the tests that make it fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) culprits: Option<Vec<String>>,
    /// It passed alone and passed again with the same tests beside it and before it: nothing
    /// points at them, so it is flaky, not parallel-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) flaky: bool,
    /// It failed while the machine was oversubscribed, and passed alone and again with the
    /// same tests beside it: the load made it fail (prun's choice, not the test's fault).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) under_load: bool,
    /// With `--bisect`: how the culprits break it, the trials run beside them, the command
    /// that reproduces it and what to write to keep them apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) collision: Option<CollisionKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trials: Option<Trials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reproduce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<Fix>,
}

/// How a test's culprits break it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CollisionKind {
    /// It fails after they ran before it: state they leave behind.
    LeftBehind,
    /// It fails while they run: something both use at the same moment.
    SameMoment,
    /// Neither: it passed after them and beside them, every trial.
    NoCulprit,
}

impl CollisionKind {
    pub(crate) fn said(self) -> &'static str {
        match self {
            CollisionKind::LeftBehind => "state left behind: it fails after them",
            CollisionKind::SameMoment => "at the same moment: it fails while they run",
            CollisionKind::NoCulprit => "no culprit: it passed after them and beside them",
        }
    }
}

/// The trials of a bisection at the same moment: the target ran back to back beside the
/// suspects, each trial at least [`Trials::RUNS`] runs and until each suspect ran through
/// [`Trials::PASSES`] times, stopping at its first failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Trials {
    pub(crate) trials: u32,
    pub(crate) runs: u32,
    pub(crate) failures: u32,
    /// When bisection stops trying (`--bisect`'s budget).
    #[serde(skip)]
    pub(crate) deadline: Option<std::time::Instant>,
    /// A trial's least runs of the target, and passes of each suspect's binary; the diagnosis's
    /// replay takes fewer than bisection.
    #[serde(skip)]
    pub(crate) least: Option<(u32, u32)>,
}

impl Trials {
    pub(crate) const RUNS: u32 = 30;
    pub(crate) const PASSES: u32 = 5;
    /// However slow the suspects, a trial ends after this many runs of the target.
    pub(crate) const MOST_RUNS: u32 = 2000;

    pub(crate) fn within(budget: Duration) -> Trials {
        Trials { deadline: Some(std::time::Instant::now() + budget), ..Trials::default() }
    }

    /// The replay of a failure with its company: the target at least 10 times, and each
    /// suspect's binary through once, within `budget`.
    pub(crate) fn replay(budget: Duration) -> Trials {
        Trials { least: Some((10, 1)), ..Trials::within(budget) }
    }

    /// A trial's least runs of the target and passes of each suspect's binary.
    pub(crate) fn least(&self) -> (u32, u32) {
        self.least.unwrap_or((Trials::RUNS, Trials::PASSES))
    }

    pub(crate) fn past_budget(&self) -> bool {
        self.deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }

    /// The chance that a collision showing in 1 of 10 runs would have shown in `runs` runs
    /// with no failure.
    pub(crate) fn confidence(runs: u32) -> f64 {
        1.0 - 0.9f64.powi(i32::try_from(runs).unwrap_or(i32::MAX))
    }
}

/// What to write so that a test and its culprits stay apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Fix {
    /// Both in one group: never at the same moment.
    Group { name: String, tests: Vec<FixTarget> },
    /// The test in a process of its own: nothing its culprits leave behind reaches it.
    Isolate { test: FixTarget },
}

/// A test a fix names, and whether it is a `#[prun::test]` (else a plain `#[test]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct FixTarget {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) prun: bool,
}

impl Fix {
    /// The lines that say what to write.
    pub(crate) fn lines(&self) -> Vec<String> {
        match self {
            Fix::Group { name, tests } => {
                let mut lines = Vec::new();
                let (prun, plain): (Vec<&FixTarget>, Vec<&FixTarget>) =
                    tests.iter().partition(|t| t.prun);
                for test in prun {
                    lines.push(format!("on {}: #[prun::test(group = \"{name}\")]", test.name));
                }
                if !plain.is_empty() {
                    let filter: Vec<String> =
                        plain.iter().map(|t| format!("test(={})", t.name)).collect();
                    lines.push(format!(
                        "in .config/nextest.toml (cargo prun reads it when there is no prun.toml): \
                         [test-groups.{name}] max-threads = 1, and [[profile.default.overrides]] \
                         filter = '{}' test-group = '{name}'",
                        filter.join(" | ")
                    ));
                    lines.push(format!(
                        "or on each plain test: #[serial_test::file_serial({name})] (across processes)"
                    ));
                }
                lines
            }
            Fix::Isolate { test } if test.prun => {
                vec![format!(
                    "on {}: #[prun::test(isolate)], or reset what its culprits leave behind",
                    test.name
                )]
            }
            Fix::Isolate { test } => vec![format!(
                "in prun.toml: isolate = [\"{}\"], or reset what its culprits leave behind",
                test.id
            )],
        }
    }
}

impl ParallelOnly {
    /// Whether the test's failure is forgiven as flaky: nothing points at its company.
    pub(crate) fn forgiven(&self) -> bool {
        self.flaky || self.under_load
    }

    pub(crate) fn reason(&self) -> &'static str {
        if self.under_load {
            "fails under load: it failed while the machine was oversubscribed, then passed alone \
             and again with the same tests beside it"
        } else if self.flaky {
            "flaky: it failed, then passed alone and passed again with the same tests beside it"
        } else if self.shared_process {
            "fails only when sharing a process with other tests: it passed when run alone"
        } else {
            "fails only in parallel: it passed when run alone"
        }
    }
}

/// What the run comes to.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    /// Ignored, or skipped by the test itself.
    pub(crate) skipped: usize,
    /// Not run: the run stopped before them (fail-fast, an interrupt).
    #[serde(default)]
    pub(crate) not_run: usize,
    /// Binary and name, and the attempts it took.
    pub(crate) flaky: Vec<(String, String, u32)>,
    /// Quarantined tests that failed (they do not count in `failed`).
    #[serde(default)]
    pub(crate) quarantined: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) parallel_only: Vec<ParallelOnly>,
    /// `--repeat`/`--stress`: runs and failures of each test, by `BINARY NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) rates: BTreeMap<String, (u32, u32)>,
    #[serde(skip)]
    pub(crate) failures: Vec<Finished>,
    #[serde(rename = "duration_ms", with = "millis")]
    pub(crate) duration: Duration,
    pub(crate) interrupted: bool,
    /// Whether doctests ran (prun.toml: `doctests = "run"`).
    pub(crate) doctests_run: bool,
    /// Whether they could have (not from an archive, which has no cargo to compile them).
    #[serde(skip)]
    pub(crate) doctests_unavailable: bool,
    /// Tests whose category does not fit what they take.
    #[serde(default)]
    pub(crate) hints: Vec<crate::history::Hint>,
    /// `--repeat`/`--stress`: count each test's runs and failures in `rates`.
    #[serde(skip)]
    pub(crate) repeating: bool,
}

impl Summary {
    pub(crate) fn record(&mut self, finished: &Finished) {
        if finished.will_retry {
            return;
        }
        if self.repeating && !matches!(finished.outcome, Outcome::Skipped { .. }) {
            let rate = self.rates.entry(format!("{} {}", finished.binary, finished.name));
            let rate = rate.or_insert((0, 0));
            rate.0 += 1;
            rate.1 += u32::from(!finished.passed);
        }
        match &finished.outcome {
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::NotRun { .. } => self.not_run += 1,
            _ if !finished.passed && finished.quarantined => {
                self.quarantined.push((finished.binary.clone(), finished.name.clone()));
            }
            _ if finished.passed => {
                self.passed += 1;
                if finished.attempt > 1 {
                    self.flaky.push((
                        finished.binary.clone(),
                        finished.name.clone(),
                        finished.attempt,
                    ));
                }
            }
            _ => {
                self.failed += 1;
                self.failures.push(finished.clone());
            }
        }
    }

    /// A failure diagnosed as the load's doing: it counts as flaky, not failed.
    pub(crate) fn forgive(&mut self, found: &ParallelOnly) {
        let at =
            self.failures.iter().position(|f| f.binary == found.binary && f.name == found.name);
        if let Some(at) = at {
            let failure = self.failures.remove(at);
            self.failed -= 1;
            self.flaky.push((failure.binary, failure.name, failure.attempt + 1));
        }
    }
}

/// What the executor reports as the run goes.
#[derive(Debug)]
pub(crate) enum Event {
    /// The schedule is over and this many failed tests run again alone, to tell failures that
    /// happen only beside other tests from the rest.
    Rerunning {
        tests: usize,
        /// With `--bisect`: how long each is bisected at the same moment, at most.
        bisect_within: Option<Duration>,
    },
    /// A test has been running this long: one each `slow-timeout` period.
    Slow {
        binary: String,
        name: String,
        running: Duration,
    },
    /// A test is running, and has been for `running_for`. A test of its own is announced as it
    /// starts; a test of a batch only once it has run a short while (most finish sooner, and an
    /// event each would cost the run a wake-up each).
    Started {
        binary: String,
        name: String,
        worker: usize,
        running_for: Duration,
    },
    Finished(Finished),
    /// After the schedule: a failed test passed alone.
    ParallelOnly(ParallelOnly),
}

/// Renders a run as it happens.
pub(crate) trait Reporter {
    fn started(&mut self, tests: usize, binaries: usize, skipped: usize);
    /// A test started (only the live progress line cares).
    fn test_started(&mut self, _binary: &str, _name: &str, _worker: usize, _running_for: Duration) {
    }
    /// A test has been running `running` (each `slow-timeout` period, as nextest's SLOW).
    fn slow(&mut self, _binary: &str, _name: &str, _running: Duration) {}
    fn finished(&mut self, finished: &Finished);
    fn parallel_only(&mut self, _found: &ParallelOnly) {}
    /// Failed tests run again alone now (see [`Event::Rerunning`]).
    fn rerunning(&mut self, _tests: usize, _bisect_within: Option<Duration>) {}
    fn done(&mut self, summary: &Summary);
}

/// A report file that could not be written: the flag that named it, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {flag} {}: {source}", path.display())]
pub(crate) struct WriteError {
    pub(crate) flag: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().clone()).unwrap()
        }
    }

    /// Every reporter renders every kind of outcome, each in its own words, with its reason.
    #[test]
    fn every_reporter_renders_every_outcome() {
        use crate::cli::{StatusLevel, TestOutput};
        let dir = tempfile::tempdir().unwrap();
        let (human_out, json_out) = (Shared::default(), Shared::default());
        let shown = human::Shown {
            status_level: StatusLevel::All,
            final_status_level: StatusLevel::All,
            failure_output: TestOutput::Final,
            success_output: TestOutput::Never,
        };
        let junit_path = dir.path().join("junit.xml");
        let outputs = crate::cli::Outputs {
            junit: None,
            json: Some(dir.path().join("run.json")),
            html: Some(dir.path().join("run.html")),
            trace: Some(dir.path().join("trace.json")),
        };
        let meta = document::Meta::new(None, Vec::new(), 2);
        let mut reporters: Vec<Box<dyn Reporter>> = vec![
            Box::new(human::Human::new(Box::new(human_out.clone()), false, shown, false)),
            Box::new(json::Json::new(Box::new(json_out.clone()))),
            Box::new(junit::Junit::create(junit_path.clone()).unwrap()),
            Box::new(document::Writer::create(meta, outputs).unwrap()),
        ];
        let outcomes = prun::Outcome::one_of_each();
        let mut summary = Summary::default();
        for reporter in &mut reporters {
            reporter.started(outcomes.len(), 1, 0);
        }
        for (n, outcome) in outcomes.iter().enumerate() {
            let finished = Finished::of("bin".into(), format!("t{n}"), outcome.clone());
            summary.record(&finished);
            for reporter in &mut reporters {
                reporter.finished(&finished);
            }
        }
        for reporter in &mut reporters {
            reporter.done(&summary);
        }
        let human = human_out.text();
        let json = json_out.text();
        let junit = std::fs::read_to_string(&junit_path).unwrap();
        let document = std::fs::read_to_string(dir.path().join("run.json")).unwrap();
        let html = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
        let trace: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("trace.json")).unwrap())
                .unwrap();
        for (n, outcome) in outcomes.iter().enumerate() {
            let name = format!("t{n}");
            let word = match outcome {
                Outcome::Passed => "PASS",
                Outcome::Failed { .. } => "FAIL",
                Outcome::TimedOut { .. } => "TIMEOUT",
                Outcome::Crashed { .. } => "CRASH",
                Outcome::Leaked { .. } => "LEAK",
                Outcome::Skipped { .. } => "SKIP",
                Outcome::NotRun { .. } => "NOT RUN",
            };
            if let Outcome::NotRun { reason } = outcome {
                // Tests the run never started are counted once, with why, not listed.
                assert!(human.contains(&format!("1 test not run: {reason}")), "{human}");
            } else {
                let line = human.lines().find(|line| line.contains(&format!("bin {name}")));
                let line = line.unwrap_or_else(|| panic!("no line for {name} in:\n{human}"));
                assert!(line.contains(word), "{word} for {outcome:?}: {line}");
            }
            let event = json
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .find(|event| event["name"] == name.as_str())
                .unwrap();
            assert_eq!(event["outcome"]["kind"], outcome.kind(), "{event}");
            let case = junit.split("<testcase").find(|case| case.contains(&format!("\"{name}\"")));
            let case = case.unwrap_or_else(|| panic!("no JUnit case for {name}: {junit}"));
            let junit_word = match outcome {
                Outcome::Passed | Outcome::Leaked { .. } => None,
                Outcome::Skipped { .. } | Outcome::NotRun { .. } => Some("<skipped"),
                Outcome::Failed { .. } => Some("<failure"),
                Outcome::TimedOut { .. } | Outcome::Crashed { .. } => Some("<error"),
            };
            match junit_word {
                Some(word) => assert!(case.contains(word), "{word} for {outcome:?}: {case}"),
                None => assert!(!case.contains("<failure") && !case.contains("<error"), "{case}"),
            }
            if !outcome.passed() {
                let reason = outcome.reason();
                assert!(human.contains(&reason), "{reason} in the human output:\n{human}");
                assert!(html.contains(&name), "{name} in the HTML report");
            }
            let span = trace["traceEvents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|event| event["name"] == format!("bin {name}").as_str())
                .unwrap_or_else(|| panic!("no span for {name}: {trace}"));
            assert_eq!(span["cat"], outcome.kind(), "{span}");
        }
        let read: document::Document = serde_json::from_str(&document).unwrap();
        let kinds: Vec<&str> = read.attempts.iter().map(|a| a.outcome.kind()).collect();
        let expected: Vec<&str> = outcomes.iter().map(prun::Outcome::kind).collect();
        assert_eq!(kinds, expected, "the document keeps every outcome as it was");
        assert!(read.attempts.iter().map(|a| &a.outcome).eq(outcomes.iter()));
    }

    #[test]
    fn a_report_keeps_the_first_and_last_mebibyte() {
        assert_eq!(kept("short \u{fffd}"), None);
        let loud = format!("{}end", "é".repeat(3 << 19));
        let text = kept(&loud).unwrap();
        assert!(text.starts_with("éé") && text.ends_with("éend"));
        assert!(text.contains("\n[prun: 1.0 MiB of output left out here]\n"), "{}", &text[..40]);
        assert!(text.len() < (2 << 20) + 100);
    }
}
