//! The dispatcher: which test runs next, given what is free.
//!
//! Pure state, no threads or clocks, so its rules can be checked by simulation. Jobs arrive in
//! priority order; a job waits in the pending set, never on a thread, until its thread slots,
//! every one of its groups and its category all have room, and then takes them all at once (so
//! a test with several groups can never hold one while waiting for another).

use std::collections::BTreeSet;

/// What one job needs while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Thread slots the job takes (a heavy test takes several).
    pub slots: u32,
    /// Indexes into [`Limits::group_capacity`].
    pub groups: Vec<usize>,
    /// Index into [`Limits::category_max_slots`].
    pub category: usize,
    /// How many times a failed attempt is run again.
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Thread slots in all.
    pub threads: u32,
    /// How many jobs of each group may run at once.
    pub group_capacity: Vec<u32>,
    /// How many slots each category may hold at once; `None` means no cap beyond `threads`.
    pub category_max_slots: Vec<Option<u32>>,
}

/// One attempt of one job, handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub job: usize,
    /// 1 for the first run.
    pub attempt: u32,
    /// Thread slots it holds: what it asked for, capped by its category and the run.
    pub slots: u32,
    /// How long it waited in the queue for a busy group, with threads free to run it (the
    /// pool measures it; the dispatcher, which has no clock, leaves it zero).
    pub group_wait: std::time::Duration,
}

#[derive(Debug)]
pub struct Dispatcher {
    jobs: Vec<Job>,
    /// Jobs not yet handed out, by priority (lower index first).
    pending: BTreeSet<usize>,
    attempts: Vec<u32>,
    free_slots: u32,
    group_free: Vec<u32>,
    category_free: Vec<u32>,
    running: usize,
    /// Jobs passed over because a group was busy, since they last started.
    held_by_group: Vec<bool>,
    /// Jobs newly passed over for a group, for [`Dispatcher::take_held_by_group`].
    newly_held: Vec<usize>,
}

impl Dispatcher {
    /// `jobs` in priority order. A job asking for more slots than its category or the run has
    /// gets as many as there are, so that it can run at all.
    pub fn new(mut jobs: Vec<Job>, limits: &Limits) -> Dispatcher {
        let jobs_len = jobs.len();
        let threads = limits.threads.max(1);
        let category_free: Vec<u32> = limits
            .category_max_slots
            .iter()
            .map(|cap| cap.unwrap_or(threads).clamp(1, threads))
            .collect();
        for job in &mut jobs {
            job.slots = job.slots.clamp(1, category_free[job.category]);
        }
        Dispatcher {
            pending: (0..jobs.len()).collect(),
            attempts: vec![0; jobs.len()],
            jobs,
            free_slots: threads,
            group_free: limits.group_capacity.iter().map(|c| (*c).max(1)).collect(),
            category_free,
            running: 0,
            held_by_group: vec![false; jobs_len],
            newly_held: Vec::new(),
        }
    }

    /// The highest-priority pending job that can start now, with its resources taken.
    pub fn next_runnable(&mut self) -> Option<Dispatch> {
        let mut found = None;
        for &job in &self.pending {
            if self.fits(job) {
                found = Some(job);
                break;
            }
            if !self.held_by_group[job] && self.fits_but_for_groups(job) {
                self.held_by_group[job] = true;
                self.newly_held.push(job);
            }
        }
        let job = found?;
        self.pending.remove(&job);
        self.take(job);
        self.held_by_group[job] = false;
        self.attempts[job] += 1;
        let (attempt, slots) = (self.attempts[job], self.jobs[job].slots);
        Some(Dispatch { job, attempt, slots, group_wait: std::time::Duration::ZERO })
    }

    /// The jobs that [`Dispatcher::next_runnable`] has newly passed over because a group they
    /// need was busy (and nothing else stopped them).
    pub fn take_held_by_group(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.newly_held)
    }

    /// Whether a finished attempt will run again: it failed and has retries left.
    pub fn will_retry(&self, dispatch: Dispatch, passed: bool) -> bool {
        !passed && dispatch.attempt <= self.jobs[dispatch.job].retries
    }

    /// Gives back what the attempt held. A failed attempt with retries left goes back in the
    /// queue at its priority; returns whether it did.
    pub fn finish(&mut self, dispatch: Dispatch, passed: bool) -> bool {
        self.give_back(dispatch.job);
        let retry = self.will_retry(dispatch, passed);
        if retry {
            self.pending.insert(dispatch.job);
        }
        retry
    }

    /// Nothing pending and nothing running: the run is over.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.running == 0
    }

    /// Some pending job could start now.
    pub fn has_runnable(&self) -> bool {
        self.pending.iter().any(|&job| self.fits(job))
    }

    pub fn running(&self) -> usize {
        self.running
    }

    fn fits(&self, job: usize) -> bool {
        let job = &self.jobs[job];
        job.slots <= self.free_slots
            && job.slots <= self.category_free[job.category]
            && job.groups.iter().all(|&group| self.group_free[group] > 0)
    }

    fn fits_but_for_groups(&self, job: usize) -> bool {
        let job = &self.jobs[job];
        job.slots <= self.free_slots && job.slots <= self.category_free[job.category]
    }

    fn take(&mut self, job: usize) {
        let job = &self.jobs[job];
        self.free_slots -= job.slots;
        self.category_free[job.category] -= job.slots;
        for &group in &job.groups {
            self.group_free[group] -= 1;
        }
        self.running += 1;
    }

    fn give_back(&mut self, job: usize) {
        let job = &self.jobs[job];
        self.free_slots += job.slots;
        self.category_free[job.category] += job.slots;
        for &group in &job.groups {
            self.group_free[group] += 1;
        }
        self.running -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(slots: u32, groups: &[usize]) -> Job {
        Job { slots, groups: groups.to_vec(), category: 0, retries: 0 }
    }

    fn limits(threads: u32, groups: usize) -> Limits {
        Limits { threads, group_capacity: vec![1; groups], category_max_slots: vec![None] }
    }

    #[test]
    fn a_busy_group_lets_the_next_test_through() {
        let mut d = Dispatcher::new(vec![job(1, &[0]), job(1, &[0]), job(1, &[])], &limits(2, 1));
        let first = d.next_runnable().unwrap();
        assert_eq!(first.job, 0);
        // Job 1 waits for the group; job 2 takes the free thread instead.
        assert_eq!(d.next_runnable().unwrap().job, 2);
        assert_eq!(d.next_runnable(), None);
        d.finish(first, true);
        assert_eq!(d.next_runnable().unwrap().job, 1);
    }

    #[test]
    fn several_groups_are_taken_together() {
        let mut d =
            Dispatcher::new(vec![job(1, &[0]), job(1, &[0, 1]), job(1, &[1])], &limits(3, 2));
        let a = d.next_runnable().unwrap();
        // Job 1 needs group 0, held by job 0: it takes neither group, so job 2 gets group 1.
        assert_eq!(d.next_runnable().unwrap().job, 2);
        d.finish(a, true);
        assert_eq!(d.next_runnable(), None);
    }

    #[test]
    fn a_failed_attempt_is_retried_until_retries_run_out() {
        let mut d = Dispatcher::new(
            vec![Job { slots: 1, groups: vec![], category: 0, retries: 1 }],
            &limits(1, 0),
        );
        let first = d.next_runnable().unwrap();
        assert!(d.finish(first, false));
        let second = d.next_runnable().unwrap();
        assert_eq!(second.attempt, 2);
        assert!(!d.finish(second, false));
        assert!(d.is_done());
    }

    #[test]
    fn a_job_wider_than_the_run_still_runs() {
        let mut d = Dispatcher::new(vec![job(16, &[])], &limits(4, 0));
        assert!(d.next_runnable().is_some());
    }

    /// A generated suite: each job's needs, how long it runs (in ticks), and how many of its
    /// attempts fail before one passes.
    #[derive(Debug, Clone)]
    struct Suite {
        jobs: Vec<Job>,
        ticks: Vec<u32>,
        failing_attempts: Vec<u32>,
        limits: Limits,
    }

    fn suite() -> impl Strategy<Value = Suite> {
        let limits = (
            1u32..6,
            prop::collection::vec(1u32..3, 3),
            prop::collection::vec(prop::option::of(1u32..4), 3),
        )
            .prop_map(|(threads, group_capacity, category_max_slots)| Limits {
                threads,
                group_capacity,
                category_max_slots,
            });
        let job = (
            1u32..4,
            prop::collection::btree_set(0usize..3, 0..3),
            0usize..3,
            0u32..3,
            1u32..10,
            0u32..3,
        );
        (limits, prop::collection::vec(job, 0..40)).prop_map(|(limits, raw)| {
            let mut suite = Suite { jobs: vec![], ticks: vec![], failing_attempts: vec![], limits };
            for (slots, groups, category, retries, ticks, failing) in raw {
                suite.jobs.push(Job {
                    slots,
                    groups: groups.into_iter().collect(),
                    category,
                    retries,
                });
                suite.ticks.push(ticks);
                suite.failing_attempts.push(failing);
            }
            suite
        })
    }

    proptest! {
        /// Runs the suite on `threads` simulated workers in logical time and checks, at every
        /// step, the invariants the scheduler promises.
        #[test]
        fn the_schedule_keeps_its_promises(suite in suite()) {
            let Suite { jobs, ticks, failing_attempts, limits } = suite;
            let mut d = Dispatcher::new(jobs.clone(), &limits);
            let threads = limits.threads as usize;
            let slots_of = |job: usize| jobs[job].slots.clamp(1, limits.category_max_slots[jobs[job].category].unwrap_or(limits.threads).min(limits.threads));
            let mut running: Vec<(u64, Dispatch)> = Vec::new();
            let mut runs = vec![0u32; jobs.len()];
            let mut now = 0u64;
            loop {
                while running.len() < threads {
                    let Some(dispatch) = d.next_runnable() else { break };
                    runs[dispatch.job] += 1;
                    running.push((now + u64::from(ticks[dispatch.job]), dispatch));
                }
                // No worker is idle while a test that could run is waiting.
                prop_assert!(running.len() == threads || !d.has_runnable());
                // Nothing is ever over capacity.
                let slots: u32 = running.iter().map(|(_, r)| slots_of(r.job)).sum();
                prop_assert!(slots <= limits.threads);
                for group in 0..limits.group_capacity.len() {
                    let holders = running.iter().filter(|(_, r)| jobs[r.job].groups.contains(&group)).count();
                    prop_assert!(holders as u32 <= limits.group_capacity[group]);
                }
                for (category, cap) in limits.category_max_slots.iter().enumerate() {
                    let used: u32 = running.iter().filter(|(_, r)| jobs[r.job].category == category).map(|(_, r)| slots_of(r.job)).sum();
                    prop_assert!(used <= cap.unwrap_or(limits.threads).min(limits.threads));
                }
                if running.is_empty() {
                    break;
                }
                now = running.iter().map(|(end, _)| *end).min().unwrap();
                let (done, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|(end, _)| *end == now);
                running = still;
                for (_, dispatch) in done {
                    let passed = dispatch.attempt > failing_attempts[dispatch.job];
                    d.finish(dispatch, passed);
                }
            }
            prop_assert!(d.is_done());
            // Every job ran exactly once, plus one run per failed attempt it was allowed to retry.
            for job in 0..jobs.len() {
                let expected = failing_attempts[job].min(jobs[job].retries) + 1;
                prop_assert_eq!(runs[job], expected, "job {}", job);
            }
        }
    }
}
