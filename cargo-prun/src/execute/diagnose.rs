//! Diagnosis, when the schedule is over, of each test that still failed after its retries and
//! had company (tests beside it, or before it in its process): it runs again alone (a fresh
//! process, nothing beside it). Failing alone, it is simply failed. Passing alone, it runs once
//! more with the same company in the same arrangement (the tests that were before it in its
//! process before it again; those beside it at the same moment, each in a process of its own):
//! failing again, it is "fails only in parallel" (or "only when sharing a process"), reported
//! with that company, and bisection over it finds the ones that make it fail; passing again,
//! nothing points at its company, and it is diagnosed flaky.

use std::collections::BTreeSet;

use super::libtest_batch::BatchResult;
use super::worker_process::WorkerResult;
use super::{ProcessExecutor, Span};
use crate::discover::Kind;
use crate::report::{Event, ParallelOnly};

/// Reruns alone after this many failures would mostly say that the suite is broken, slowly.
const MOST_RERUNS: usize = 10;

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
            self.send(Event::Rerunning { tests: with_company.len() });
        }
        for (span, beside, before) in with_company {
            if self.children.interrupted() {
                return;
            }
            if !self.fails(&[], span.test) {
                let again = self.fails_with(&before, &beside, span.test);
                let mut found = self.parallel_only(span, &beside, &before, bisect && again);
                found.flaky = !again;
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
        let culprits = bisect
            .then(|| self.bisect(failure.test, &suspects))
            .map(|found| found.unwrap_or_default().iter().map(|&t| self.id(t)).collect());
        ParallelOnly {
            binary: self.binaries[test.binary].binary.id.clone(),
            name: test.name.clone(),
            shared_process: !before.is_empty(),
            neighbours: suspects.iter().map(|&t| self.id(t)).collect(),
            culprits,
            flaky: false,
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

    /// The smallest set of `suspects` found (by halving) that makes `target` fail when they run
    /// before it; `None` when all of them together do not.
    pub(crate) fn bisect(&self, target: usize, suspects: &[usize]) -> Option<Vec<usize>> {
        if suspects.is_empty() || !self.fails(suspects, target) {
            return None;
        }
        let mut suspects = suspects.to_vec();
        while suspects.len() > 1 {
            let (first, second) = suspects.split_at(suspects.len() / 2);
            if self.fails(first, target) {
                suspects = first.to_vec();
            } else if self.fails(second, target) {
                suspects = second.to_vec();
            } else {
                // It takes tests of both halves: this set is as small as halving gets.
                break;
            }
        }
        Some(suspects)
    }

    /// Replays the failure's arrangement; whether `target` failed again. First the tests that
    /// ran before it in its process, before it again (state left behind); if that does not
    /// reproduce it, also those that ran beside it, at the same moment: each binary's in one
    /// process of its own, on a slot of its own (so their ports differ, as in the run).
    fn fails_with(&self, before: &[usize], beside: &[usize], target: usize) -> bool {
        if !before.is_empty() && self.fails(before, target) {
            return true;
        }
        if beside.is_empty() {
            return false;
        }
        let mut beside = beside.to_vec();
        beside.sort_by_key(|&t| self.tests[t].binary);
        std::thread::scope(|scope| {
            let binaries = beside.chunk_by(|&a, &b| self.tests[a].binary == self.tests[b].binary);
            for (slot, group) in binaries.enumerate() {
                scope.spawn(move || self.run_in_order(group, slot + 1));
            }
            self.fails(before, target)
        })
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
                    let result = worker.run(&test.name, 1, test.job.slots, index, test.timeout);
                    let alive = matches!(result, WorkerResult::Finished(..));
                    if index == last {
                        outcome = Some(
                            matches!(&result, WorkerResult::Finished(r, _) if r.outcome.passed()),
                        );
                    }
                    if !alive {
                        break;
                    }
                }
                worker.hang_up();
                outcome
            }
            Kind::Prun => Some(self.run_alone(&self.tests[last], slot).0.passed()),
            // One process per test, in order; the last one's verdict.
            Kind::OneFilter => {
                let mut passed = None;
                for &index in tests {
                    passed = Some(self.run_alone(&self.tests[index], slot).0.passed());
                }
                passed
            }
            Kind::Libtest => {
                let members: Vec<_> = tests.iter().map(|&t| &self.tests[t]).collect();
                let results = self.libtest_batch(&members, slot);
                match results.get(&self.tests[last].name)?.0 {
                    BatchResult::Passed | BatchResult::Leaked(_) => Some(true),
                    BatchResult::NotRun(_) => None,
                    _ => Some(false),
                }
            }
        }
    }
}
