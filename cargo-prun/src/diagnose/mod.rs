//! Diagnosis, when the schedule is over, of each test that still failed after its retries and
//! had company (tests beside it, or before it in its process): it runs again alone (a fresh
//! process, nothing beside it). Failing alone, it is simply failed. Passing alone, it runs once
//! more with the same company in the same arrangement (the tests that were before it in its
//! process before it again; those beside it at the same moment, each in a process of its own):
//! failing again, it is "fails only in parallel" (or "only when sharing a process"), reported
//! with that company, and bisection over it finds the ones that make it fail; passing again,
//! nothing points at its company: it is diagnosed flaky, or "fails under load" when the
//! machine was oversubscribed while it failed (the rerun and the replay run without that load).

mod bisect;

use std::collections::BTreeSet;

pub(crate) use bisect::bisect;
pub(crate) use bisect::{Error as BisectError, command};

use crate::discover::{Binary, Kind};
use crate::event::{CollisionKind, Event, Fix, FixTarget, ParallelOnly, Trials};
use crate::execute::{Record, Span};
use crate::plan::PlannedTest;

/// Reruns alone after this many failures would mostly say that the suite is broken, slowly.
const MOST_RERUNS: usize = 10;

/// How long the replay of a failure with the tests that were beside it may take.
const REPLAY_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// How long `--bisect` tries at the same moment for one failure before it settles for the
/// smallest set found so far.
pub(crate) const BISECT_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// What bisection found: how the culprits break the test, and the trials beside them.
#[derive(Debug, Clone)]
pub(crate) struct Collision {
    pub(crate) kind: CollisionKind,
    pub(crate) culprits: Vec<usize>,
    pub(crate) trials: Option<Trials>,
}

/// A group name for tests that collide: the words their names share (`a_reads_marker` and
/// `b_writes_marker` share `marker`), else the first test's name.
pub(crate) fn group_name(names: &[&str]) -> String {
    let words = |name: &str| -> Vec<String> {
        name.rsplit("::")
            .next()
            .unwrap_or(name)
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| word.len() > 2)
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let first = words(names.first().copied().unwrap_or("shared"));
    let shared: Vec<String> = first
        .iter()
        .filter(|word| names.iter().skip(1).all(|name| words(name).contains(word)))
        .cloned()
        .collect();
    if shared.is_empty() {
        let name: String = names
            .first()
            .copied()
            .unwrap_or("shared")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("apart-from-{}", name.trim_matches('-'))
    } else {
        shared.join("-")
    }
}

/// What diagnosis needs of the run: its tests, and running some of them again.
pub(crate) trait Replay: Sync {
    fn tests(&self) -> &[PlannedTest];
    fn binaries(&self) -> &[Binary];
    /// Runs tests of one binary one after another in one fresh process (in name order for a
    /// plain binary, which is how libtest runs them), on `lane`. Whether the last one passed;
    /// `None` when it did not get to run.
    fn run_in_order(&self, tests: &[usize], lane: usize) -> Option<bool>;
    /// The run was interrupted: diagnosis stops.
    fn interrupted(&self) -> bool;
}

/// Reruns each final failure of the run alone; reports those that pass as parallel-only (and,
/// with `bisect`, finds their culprits), through `send`.
pub(crate) fn diagnose<R: Replay + ?Sized>(
    replay: &R,
    record: Record,
    bisect: bool,
    send: &dyn Fn(Event),
) {
    let diagnosis = Diagnosis { replay, spans: record.spans };
    if replay.interrupted() {
        return;
    }
    let failed: Vec<Span> = record
        .failed
        .into_iter()
        .filter(|span| !record.failed_alone.contains(&span.test))
        .collect();
    if failed.len() > MOST_RERUNS {
        eprintln!("note: {} failures: only the first {MOST_RERUNS} are rerun alone", failed.len());
    }
    // Those with company: one that had nothing beside it and nothing before it in its process
    // already failed alone.
    let with_company: Vec<(&Span, Vec<usize>, Vec<usize>)> = failed
        .iter()
        .take(MOST_RERUNS)
        .map(|span| {
            let (beside, before) = diagnosis.neighbours(span);
            (span, beside, before)
        })
        .filter(|(_, beside, before)| !beside.is_empty() || !before.is_empty())
        .collect();
    if !with_company.is_empty() {
        let bisect_within = bisect.then_some(BISECT_BUDGET);
        send(Event::Rerunning { tests: with_company.len(), bisect_within });
    }
    for (span, beside, before) in with_company {
        if replay.interrupted() {
            return;
        }
        if !diagnosis.fails(&[], span.test) {
            let again = diagnosis.fails_with(&before, &beside, span.test);
            let mut found = diagnosis.parallel_only(span, &beside, &before, bisect && again);
            // Passing again with its company, a failure under load was the load's doing.
            found.under_load = !again && span.loaded;
            found.flaky = !again && !span.loaded;
            send(Event::ParallelOnly(found));
        }
    }
}

/// Replays of a run's tests, and what they show: the record of where each attempt ran, and a
/// way to run tests again.
pub(crate) struct Diagnosis<'r, R: ?Sized> {
    replay: &'r R,
    spans: Vec<Span>,
}

impl<'r, R: Replay + ?Sized> Diagnosis<'r, R> {
    /// Diagnosis with no record of a run (`cargo prun bisect`).
    pub(crate) fn new(replay: &'r R) -> Diagnosis<'r, R> {
        Diagnosis { replay, spans: Vec::new() }
    }

    fn parallel_only(
        &self,
        failure: &Span,
        beside: &[usize],
        before: &[usize],
        bisect: bool,
    ) -> ParallelOnly {
        let suspects: Vec<usize> = before.iter().chain(beside).copied().collect();
        let test = &self.replay.tests()[failure.test];
        let collision = bisect
            .then(|| self.bisect(failure.test, &suspects, Trials::within(BISECT_BUDGET)))
            .flatten();
        let culprits = bisect.then(|| {
            let culprits = collision.as_ref().map_or(&[][..], |c| &c.culprits[..]);
            culprits.iter().map(|&t| self.id(t)).collect()
        });
        let reproduce = collision.as_ref().and_then(|c| self.reproduce(failure.test, c));
        let fix = collision.as_ref().and_then(|c| self.fix(failure.test, c));
        ParallelOnly {
            binary: self.replay.binaries()[test.binary].binary.id.clone(),
            name: test.name().to_owned(),
            shared_process: !before.is_empty(),
            neighbours: suspects.iter().map(|&t| self.id(t)).collect(),
            culprits,
            flaky: false,
            under_load: false,
            collision: collision.as_ref().map(|c| c.kind),
            trials: collision.and_then(|c| c.trials),
            reproduce,
            fix,
        }
    }

    /// The command that brings the failure back.
    pub(crate) fn reproduce(&self, target: usize, collision: &Collision) -> Option<String> {
        let culprits: Vec<String> = collision.culprits.iter().map(|&t| self.id(t)).collect();
        let target_id = self.id(target);
        match collision.kind {
            CollisionKind::NoCulprit => None,
            CollisionKind::LeftBehind => Some(bisect::command(&[], &target_id, &culprits)),
            CollisionKind::SameMoment => Some(bisect::beside_command(&[], &target_id, &culprits)),
        }
    }

    /// What to write to keep `target` from its culprits.
    pub(crate) fn fix(&self, target: usize, collision: &Collision) -> Option<Fix> {
        let of = |t: usize| FixTarget {
            id: self.id(t),
            name: self.replay.tests()[t].name().to_owned(),
            prun: self.replay.binaries()[self.replay.tests()[t].binary].kind == Kind::Prun,
        };
        match collision.kind {
            CollisionKind::NoCulprit => None,
            CollisionKind::LeftBehind => Some(Fix::Isolate { test: of(target) }),
            CollisionKind::SameMoment => {
                let mut tests = vec![of(target)];
                tests.extend(collision.culprits.iter().map(|&t| of(t)));
                let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
                Some(Fix::Group { name: group_name(&names), tests })
            }
        }
    }

    pub(crate) fn id(&self, test: usize) -> String {
        self.replay.tests()[test].id().to_owned()
    }

    /// The tests that ran beside the failed attempt (their spans overlap it, on other slots),
    /// and those that ran before it in its process, each in the order they started.
    fn neighbours(&self, failure: &Span) -> (Vec<usize>, Vec<usize>) {
        let mut spans = self.spans.clone();
        spans.sort_by_key(|span| span.start);
        let mut seen = BTreeSet::from([failure.test]);
        let before: Vec<usize> = spans
            .iter()
            .filter(|s| s.process == failure.process && s.start <= failure.start)
            .filter(|s| seen.insert(s.test))
            .map(|s| s.test)
            .collect();
        let beside: Vec<usize> = spans
            .iter()
            .filter(|s| s.slot != failure.slot && s.start < failure.end && failure.start < s.end)
            .filter(|s| seen.insert(s.test))
            .map(|s| s.test)
            .collect();
        (beside, before)
    }

    /// The smallest set of `suspects` found (by halving) that makes `target` fail: first when
    /// they run before it (state left behind), else when they run beside it at the same moment
    /// (each trial repeated, see [`Trials`]). `None` when all of them together do neither.
    pub(crate) fn bisect(
        &self,
        target: usize,
        suspects: &[usize],
        mut trials: Trials,
    ) -> Option<Collision> {
        if suspects.is_empty() {
            return None;
        }
        if self.fails(suspects, target) {
            let culprits = self.halve(suspects, |set| self.fails(set, target));
            return Some(Collision { kind: CollisionKind::LeftBehind, culprits, trials: None });
        }
        if !self.fails_beside(suspects, target, &mut trials) {
            return Some(Collision {
                kind: CollisionKind::NoCulprit,
                culprits: Vec::new(),
                trials: Some(trials),
            });
        }
        let culprits = self.halve(suspects, |set| self.fails_beside(set, target, &mut trials));
        Some(Collision { kind: CollisionKind::SameMoment, culprits, trials: Some(trials) })
    }

    /// Whether `target` fails while `beside` run at the same moment, in one trial (see
    /// [`Diagnosis::fails_beside`]); for `cargo prun bisect --with ... --beside`.
    pub(crate) fn replay_beside(&self, beside: &[usize], target: usize) -> (bool, Trials) {
        let mut trials = Trials::default();
        let failed = self.fails_beside(beside, target, &mut trials);
        (failed, trials)
    }

    /// Halves `suspects` while one half alone still `fails`.
    fn halve(&self, suspects: &[usize], mut fails: impl FnMut(&[usize]) -> bool) -> Vec<usize> {
        let mut suspects = suspects.to_vec();
        while suspects.len() > 1 {
            let (first, second) = suspects.split_at(suspects.len() / 2);
            if fails(first) {
                suspects = first.to_vec();
            } else if fails(second) {
                suspects = second.to_vec();
            } else {
                // It takes tests of both halves: this set is as small as halving gets.
                break;
            }
        }
        suspects
    }

    /// Whether `target` fails while `beside` run at the same moment. They run over and over
    /// (each binary's in a process of its own, on a lane of its own) while `target` runs back
    /// to back, one fresh process after another, at least [`Trials::RUNS`] times and until
    /// each of them has run through [`Trials::PASSES`] times, so that the target runs during
    /// every moment of theirs; the trial stops at the target's first failure.
    fn fails_beside(&self, beside: &[usize], target: usize, trials: &mut Trials) -> bool {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let mut beside = beside.to_vec();
        beside.sort_by_key(|&t| self.replay.tests()[t].binary);
        let groups: Vec<&[usize]> = beside
            .chunk_by(|&a, &b| self.replay.tests()[a].binary == self.replay.tests()[b].binary)
            .collect();
        let passes: Vec<AtomicU32> = groups.iter().map(|_| AtomicU32::new(0)).collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for (lane, (group, passes)) in groups.iter().zip(&passes).enumerate() {
                let stop = &stop;
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        self.replay.run_in_order(group, lane + 1);
                        passes.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            let mut runs = 0;
            let mut failed = false;
            let (least_runs, least_passes) = trials.least();
            while runs < least_runs
                || passes.iter().any(|p| p.load(Ordering::SeqCst) < least_passes)
            {
                if runs >= Trials::MOST_RUNS || self.replay.interrupted() || trials.past_budget() {
                    break;
                }
                runs += 1;
                if self.replay.run_in_order(&[target], 0).is_some_and(|passed| !passed) {
                    failed = true;
                    break;
                }
            }
            stop.store(true, Ordering::SeqCst);
            trials.runs += runs;
            trials.failures += u32::from(failed);
            trials.trials += 1;
            failed
        })
    }

    /// Replays the failure's arrangement; whether `target` failed again. First the tests that
    /// ran before it in its process, before it again (state left behind); if that does not
    /// reproduce it, those that ran beside it, at the same moment, in a trial (they run over
    /// and over, each binary's in a process of its own on a lane of its own, while the target
    /// runs back to back: see `fails_beside`), so that a collision does not hang on when
    /// exactly each started.
    fn fails_with(&self, before: &[usize], beside: &[usize], target: usize) -> bool {
        if !before.is_empty() && self.fails(before, target) {
            return true;
        }
        if beside.is_empty() {
            return false;
        }
        self.fails_beside(beside, target, &mut Trials::replay(REPLAY_BUDGET))
    }

    /// Runs `before` and then `target`, one after another, and says whether `target` failed.
    /// Tests of other binaries run first, in processes of their own; those of the target's
    /// binary share its process, as they did in the run.
    pub(crate) fn fails(&self, before: &[usize], target: usize) -> bool {
        let binary = self.replay.tests()[target].binary;
        let mut others: Vec<usize> =
            before.iter().copied().filter(|&t| self.replay.tests()[t].binary != binary).collect();
        others.sort_by_key(|&t| self.replay.tests()[t].binary);
        for chunk in
            others.chunk_by(|&a, &b| self.replay.tests()[a].binary == self.replay.tests()[b].binary)
        {
            self.replay.run_in_order(chunk, 0);
        }
        let mut sequence: Vec<usize> =
            before.iter().copied().filter(|&t| self.replay.tests()[t].binary == binary).collect();
        sequence.push(target);
        self.replay.run_in_order(&sequence, 0).is_some_and(|passed| !passed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A run of three plain tests: `t2` fails after `t0` ran before it in its process (when
    /// `left_behind`), and passes otherwise.
    struct Fake {
        tests: Vec<PlannedTest>,
        binaries: Vec<Binary>,
        left_behind: bool,
        runs: Mutex<Vec<Vec<usize>>>,
    }

    impl Fake {
        fn new(left_behind: bool) -> Fake {
            use crate::plan::tests::{binary, test};
            let catalog = ["t0", "t1", "t2"].iter().map(|name| test(name, &[])).collect();
            let binaries = vec![binary("b", Kind::Libtest, catalog)];
            let (selection, options) = (crate::plan::Selection::default(), Default::default());
            let config = prun::config::Config::default();
            let known = std::collections::HashMap::new();
            let plan = crate::plan::plan(&binaries, &selection, options, &config, 1, &known);
            let tests = plan.expect("unit tests plan").tests;
            Fake { tests, binaries, left_behind, runs: Mutex::default() }
        }
    }

    impl Replay for Fake {
        fn tests(&self) -> &[PlannedTest] {
            &self.tests
        }

        fn binaries(&self) -> &[Binary] {
            &self.binaries
        }

        fn run_in_order(&self, tests: &[usize], _lane: usize) -> Option<bool> {
            self.runs.lock().unwrap().push(tests.to_vec());
            let last = *tests.last()?;
            Some(!(self.left_behind && last == 2 && tests.contains(&0)))
        }

        fn interrupted(&self) -> bool {
            false
        }
    }

    /// `t0` then `t2` in one process on slot 0, `t1` beside them on slot 1; `t2` failed.
    fn record(loaded: bool) -> Record {
        let span = |test, slot, process, start, end| Span {
            test,
            slot,
            process,
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            loaded,
        };
        let failed = span(2, 0, 1, 10, 20);
        Record {
            spans: vec![span(0, 0, 1, 0, 10), span(1, 1, 2, 0, 20), failed],
            failed: vec![failed],
            failed_alone: Default::default(),
        }
    }

    fn diagnosed(fake: &Fake, record: Record, bisect: bool) -> Vec<Event> {
        let events = Mutex::new(Vec::new());
        diagnose(fake, record, bisect, &|event| events.lock().unwrap().push(event));
        events.into_inner().unwrap()
    }

    #[test]
    fn a_test_broken_by_what_ran_before_it_is_parallel_only_and_bisection_names_the_culprit() {
        let fake = Fake::new(true);
        let events = diagnosed(&fake, record(false), true);
        let [Event::Rerunning { tests: 1, .. }, Event::ParallelOnly(found)] = &events[..] else {
            panic!("{events:#?}")
        };
        assert_eq!((found.binary.as_str(), found.name.as_str()), ("b", "t2"));
        assert!(found.shared_process && !found.flaky && !found.under_load);
        assert_eq!(found.neighbours, ["b t0", "b t1"], "before it, then beside it");
        assert_eq!(found.culprits.as_deref(), Some(&["b t0".to_owned()][..]));
        assert_eq!(found.collision, Some(CollisionKind::LeftBehind));
        let Some(Fix::Isolate { test }) = &found.fix else { panic!("{:?}", found.fix) };
        assert_eq!(test.id, "b t2");
        assert_eq!(found.reproduce.as_deref(), Some("cargo prun bisect 'b t2' --with 'b t0'"));
        // It ran alone first: a fresh process of t2 alone.
        assert_eq!(fake.runs.lock().unwrap()[0], [2]);
    }

    #[test]
    fn a_failure_its_company_does_not_bring_back_is_flaky_or_the_loads_doing() {
        for loaded in [false, true] {
            let events = diagnosed(&Fake::new(false), record(loaded), false);
            let Some(Event::ParallelOnly(found)) = events.last() else { panic!("{events:#?}") };
            assert_eq!((found.flaky, found.under_load), (!loaded, loaded));
            assert_eq!(found.culprits, None, "no bisection was asked for");
        }
    }

    #[test]
    fn a_test_that_failed_alone_already_is_not_rerun() {
        let fake = Fake::new(true);
        let mut record = record(false);
        record.failed_alone.insert(2);
        assert!(diagnosed(&fake, record, true).is_empty());
        assert!(fake.runs.lock().unwrap().is_empty());
    }

    #[test]
    fn colliding_tests_get_a_group_named_for_what_their_names_share() {
        assert_eq!(group_name(&["a_reads_marker", "b_writes_marker"]), "marker");
        assert_eq!(group_name(&["alpha::one", "beta::two"]), "apart-from-alpha--one");
    }
}
