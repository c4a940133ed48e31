//! Diagnosis, when the schedule is over, of each test that still failed after its retries and
//! had company (tests beside it, or before it in its process): it runs again alone (a fresh
//! process, nothing beside it). Failing alone, it is simply failed. Passing alone, it runs once
//! more with the same company in the same arrangement (the tests that were before it in its
//! process before it again; those beside it at the same moment, each in a process of its own):
//! failing again, it is "fails only in parallel" (or "only when sharing a process"), reported
//! with that company, and bisection over it finds the ones that make it fail; passing again,
//! nothing points at its company: it is diagnosed flaky, or "fails under load" when the
//! machine was oversubscribed while it failed (the rerun and the replay run without that load).

use std::collections::BTreeSet;

use super::{ProcessExecutor, Span};
use crate::discover::Kind;
use crate::report::{CollisionKind, Event, Fix, FixTarget, ParallelOnly, Trials};

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

impl ProcessExecutor {
    /// Reruns each final failure alone; reports those that pass as parallel-only (and, with
    /// `bisect`, finds their culprits). Pooled workers are stopped first, so nothing else runs.
    pub(crate) fn diagnose(&self, bisect: bool) {
        if self.children.interrupted() {
            return;
        }
        self.retire_workers();
        let known = self.failed_alone.lock().clone();
        let failed: Vec<Span> = std::mem::take(&mut *self.failed.lock())
            .into_iter()
            .filter(|span| !known.contains(&span.test))
            .collect();
        if failed.len() > MOST_RERUNS {
            eprintln!(
                "note: {} failures: only the first {MOST_RERUNS} are rerun alone",
                failed.len()
            );
        }
        // Those with company: one that had nothing beside it and nothing before it in its process
        // already failed alone.
        let with_company: Vec<(&Span, Vec<usize>, Vec<usize>)> = failed
            .iter()
            .take(MOST_RERUNS)
            .map(|span| {
                let (beside, before) = self.neighbours(span);
                (span, beside, before)
            })
            .filter(|(_, beside, before)| !beside.is_empty() || !before.is_empty())
            .collect();
        if !with_company.is_empty() {
            let bisect_within = bisect.then_some(BISECT_BUDGET);
            self.send(Event::Rerunning { tests: with_company.len(), bisect_within });
        }
        for (span, beside, before) in with_company {
            if self.children.interrupted() {
                return;
            }
            if !self.fails(&[], span.test) {
                let again = self.fails_with(&before, &beside, span.test);
                let mut found = self.parallel_only(span, &beside, &before, bisect && again);
                // Passing again with its company, a failure under load was the load's doing.
                found.under_load = !again && span.loaded;
                found.flaky = !again && !span.loaded;
                self.send(Event::ParallelOnly(found));
            }
        }
    }

    fn parallel_only(
        &self,
        failure: &Span,
        beside: &[usize],
        before: &[usize],
        bisect: bool,
    ) -> ParallelOnly {
        let suspects: Vec<usize> = before.iter().chain(beside).copied().collect();
        let test = &self.tests[failure.test];
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
            binary: self.binaries[test.binary].binary.id.clone(),
            name: test.name.clone(),
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
            CollisionKind::LeftBehind => Some(crate::bisect::command(&[], &target_id, &culprits)),
            CollisionKind::SameMoment => {
                Some(crate::bisect::beside_command(&[], &target_id, &culprits))
            }
        }
    }

    /// What to write to keep `target` from its culprits.
    pub(crate) fn fix(&self, target: usize, collision: &Collision) -> Option<Fix> {
        let of = |t: usize| FixTarget {
            id: self.id(t),
            name: self.tests[t].name.clone(),
            prun: self.binaries[self.tests[t].binary].kind == Kind::Prun,
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
        self.tests[test].id(&self.binaries)
    }

    /// The tests that ran beside the failed attempt (their spans overlap it, on other slots),
    /// and those that ran before it in its process, each in the order they started.
    fn neighbours(&self, failure: &Span) -> (Vec<usize>, Vec<usize>) {
        let mut spans = self.spans.lock().clone();
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
    /// [`ProcessExecutor::fails_beside`]); for `cargo prun bisect --with ... --beside`.
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
        beside.sort_by_key(|&t| self.tests[t].binary);
        let groups: Vec<&[usize]> =
            beside.chunk_by(|&a, &b| self.tests[a].binary == self.tests[b].binary).collect();
        let passes: Vec<AtomicU32> = groups.iter().map(|_| AtomicU32::new(0)).collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for (lane, (group, passes)) in groups.iter().zip(&passes).enumerate() {
                let stop = &stop;
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        self.run_in_order(group, lane + 1);
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
                if runs >= Trials::MOST_RUNS || self.children.interrupted() || trials.past_budget()
                {
                    break;
                }
                runs += 1;
                if self.run_in_order(&[target], 0).is_some_and(|passed| !passed) {
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
        let binary = self.tests[target].binary;
        let mut others: Vec<usize> =
            before.iter().copied().filter(|&t| self.tests[t].binary != binary).collect();
        others.sort_by_key(|&t| self.tests[t].binary);
        for chunk in others.chunk_by(|&a, &b| self.tests[a].binary == self.tests[b].binary) {
            self.run_in_order(chunk, 0);
        }
        let mut sequence: Vec<usize> =
            before.iter().copied().filter(|&t| self.tests[t].binary == binary).collect();
        sequence.push(target);
        self.run_in_order(&sequence, 0).is_some_and(|passed| !passed)
    }

    /// Runs tests of one binary one after another in one fresh process (in name order for a
    /// plain binary, which is how libtest runs them), as `slot`. Whether the last one passed;
    /// `None` when it did not get to run.
    fn run_in_order(&self, tests: &[usize], slot: usize) -> Option<bool> {
        let binary_index = self.tests[tests[0]].binary;
        let binary = &self.binaries[binary_index];
        let last = *tests.last()?;
        match binary.kind {
            Kind::Prun if !self.tests[last].meta.isolate => {
                let mut worker = self.new_worker(binary_index, slot).ok()?;
                let mut outcome = None;
                for &index in tests {
                    let test = &self.tests[index];
                    let answer = worker.run(&test.name, 1, test.job.slots, index, test.timeout);
                    if index == last {
                        outcome = Some(answer.alive && answer.attempt.outcome.passed());
                    }
                    if !answer.alive {
                        break;
                    }
                }
                worker.hang_up();
                outcome
            }
            Kind::Prun => Some(self.run_alone(&self.tests[last], slot).outcome.passed()),
            // One process per test, in order; the last one's verdict.
            Kind::OneFilter => {
                let mut passed = None;
                for &index in tests {
                    passed = Some(self.run_alone(&self.tests[index], slot).outcome.passed());
                }
                passed
            }
            Kind::Libtest => {
                let members: Vec<_> = tests.iter().map(|&t| &self.tests[t]).collect();
                let batched = self.libtest_batch(&members, slot).remove(&self.tests[last].name)?;
                // A leak fails the test when the config says so, in a replay as in the run.
                let outcome = self.judge_leak(&self.tests[last], batched.attempt.outcome);
                (!batched.missing).then(|| outcome.passed())
            }
        }
    }
}
