//! The run's events and the values they carry: what the executor and diagnosis produce as the
//! run goes, what the run tallies (`Summary`), and what every reporter renders and the history
//! learns from. Every stage may use them; they use no stage.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use prun::Outcome;
use prun::Tally;
use prun::protocol::TestId;
use prun::time::millis;

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
    /// libtest said it is `#[should_panic]` (a plain test run in a batch): the history keeps
    /// it, for the plan of a run whose panics print backtraces.
    #[serde(skip)]
    pub(crate) should_panic: bool,
}

impl Finished {
    /// `BINARY NAME`.
    pub(crate) fn id(&self) -> String {
        TestId { binary: &self.binary, name: &self.name }.joined()
    }

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
            should_panic: false,
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
    /// `BINARY NAME`.
    pub(crate) fn id(&self) -> String {
        TestId { binary: &self.binary, name: &self.name }.joined()
    }

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
            let rate = self.rates.entry(finished.id());
            let rate = rate.or_insert((0, 0));
            rate.0 += 1;
            rate.1 += u32::from(!finished.passed);
        }
        match finished.outcome.tally(finished.attempt, false) {
            Tally::Retrying => {}
            Tally::Skipped => self.skipped += 1,
            Tally::NotRun => self.not_run += 1,
            // A quarantined test's failure is reported, and fails nothing.
            _ if !finished.passed && finished.quarantined => {
                self.quarantined.push((finished.binary.clone(), finished.name.clone()));
            }
            Tally::Passed => self.passed += 1,
            Tally::Flaky => {
                self.passed += 1;
                let (binary, name) = (finished.binary.clone(), finished.name.clone());
                self.flaky.push((binary, name, finished.attempt));
            }
            Tally::Failed => {
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
