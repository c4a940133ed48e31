//! The dispatcher: which test runs next, given what is free.
//!
//! Pure state, no threads or clocks, so its rules can be checked by simulation. Jobs arrive in
//! priority order; a job waits in the pending set, never on a thread, until its thread slots,
//! every one of its groups and its category all have room, and then takes them all at once (so
//! a test with several groups can never hold one while waiting for another).
//!
//! With [`Limits::adaptive`], thread slots are only a ceiling: a job is admitted while the
//! expected CPU demand of the running jobs (each weighs what it used per second of wall time
//! in earlier runs) stays within the cores (see [`Adaptive::capacity`]) and their expected
//! peak memory within what is available. A live signal from the machine
//! ([`Dispatcher::observe`]) lets more in while cores sit idle despite the expectation, and
//! holds the run to the expectation while the machine is saturated.

use std::collections::BTreeSet;

/// What one job needs while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// Thread slots the job takes (a heavy test takes several).
    pub slots: u32,
    /// Indexes into [`Limits::group_capacity`].
    pub groups: Vec<usize>,
    /// Index into [`Limits::category_max_slots`].
    pub category: usize,
    /// How many times a failed attempt is run again.
    pub retries: u32,
    /// What it is expected to use, for adaptive limits.
    pub demand: Demand,
}

impl Job {
    /// What the job weighs against the cores, in thousandths of a core: its measured CPU (a
    /// core per slot when unknown), and at least a core per slot when it takes several
    /// (`threads = 4` weighs at least 4) or is calm.
    pub fn weight(&self) -> u64 {
        let slots = u64::from(self.slots.max(1));
        let measured = match self.demand.millicores {
            0 => 1000 * slots,
            known => u64::from(known.max(LIGHTEST)),
        };
        let floor = if self.demand.calm || slots > 1 { 1000 * slots } else { 0 };
        measured.max(floor)
    }

    /// The job's share of one core, in thousandths: its weight, at most a whole core (a job of
    /// several slots keeps a core of its own busy, not more of any one core).
    pub fn share(&self) -> u64 {
        self.weight().min(1000)
    }
}

/// What a job is expected to use while it runs, from earlier runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// CPU per second of wall time, in thousandths of a core; 0 when unknown (it then weighs a
    /// core per slot).
    pub millicores: u32,
    /// Peak resident memory, in KiB; 0 when unknown.
    pub memory_kb: u64,
    /// It failed under load before: it runs only while the machine is not oversubscribed,
    /// and nothing beyond the cores is admitted while it runs.
    pub calm: bool,
}

/// Limits from the machine rather than a count: see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adaptive {
    /// The machine's cores, in thousandths.
    pub millicores: u32,
    /// Memory the running tests may take, in KiB.
    pub memory_kb: u64,
}

impl Adaptive {
    /// The expected CPU the running tests may hold, in thousandths of a core: the cores, and an
    /// eighth more (at most half a core). A weight is what earlier runs used, on a machine
    /// that was busy or not, so the eighth is within what it cannot tell apart; and it is the
    /// room the tests that wait need beside tests that keep every core busy. Never a whole core
    /// more: CPU-bound tests run one a core.
    pub fn capacity(&self) -> u64 {
        let cores = u64::from(self.millicores);
        cores + (cores / 8).min(500)
    }
}

/// What the machine measured over the last moment, for [`Dispatcher::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Cores that sat idle, in thousandths.
    pub idle_millicores: u32,
    /// More threads wanted a core than there are cores.
    pub saturated: bool,
}

/// The least a job weighs, in thousandths of a core: a test that mostly waits still costs its
/// process something. Small, so that the many tests that wait fit beside those that keep
/// every core busy (a test run in a process of its own is measured with what its start costs).
pub const LIGHTEST: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Thread slots in all.
    pub threads: u32,
    /// How many jobs of each group may run at once.
    pub group_capacity: Vec<u32>,
    /// How many slots each category may hold at once; `None` means no cap beyond `threads`.
    pub category_max_slots: Vec<Option<u32>>,
    /// Admit by measured demand, with `threads` as the ceiling of tests at once.
    pub adaptive: Option<Adaptive>,
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
    /// The machine was oversubscribed at some moment while it ran (set when it ends, from
    /// [`Dispatcher::was_loaded`]).
    pub loaded: bool,
    /// The lowest lane free when it started (the pool numbers them from 0): what per-lane
    /// resources (a worker process, a block of ports) are keyed by, so that a run with a high
    /// ceiling and few tests at once uses few of them.
    pub lane: usize,
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
    adaptive: Option<Adaptive>,
    /// Expected CPU (thousandths of a core) and memory (KiB) of the running jobs.
    demand_used: u64,
    memory_used: u64,
    /// Thousandths of a core measured idle that admissions beyond the expectation may use,
    /// until the next measurement.
    credit: u32,
    saturated: bool,
    /// Running jobs, and which of them saw the machine oversubscribed.
    running_jobs: BTreeSet<usize>,
    loaded: Vec<bool>,
    calm_running: usize,
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
            adaptive: limits.adaptive,
            demand_used: 0,
            memory_used: 0,
            credit: 0,
            saturated: false,
            running_jobs: BTreeSet::new(),
            loaded: vec![false; jobs_len],
            calm_running: 0,
        }
    }

    /// What the machine measured: idle cores let tests in beyond the expectation (until the
    /// next measurement), saturation holds the run to the expectation (its CPU within the
    /// cores).
    pub fn observe(&mut self, load: Load) {
        self.credit = load.idle_millicores;
        self.saturated = load.saturated;
    }

    /// Whether the run held more expected CPU than the cores' capacity at some moment while
    /// `job`'s attempt ran.
    pub fn was_loaded(&self, job: usize) -> bool {
        self.loaded[job]
    }

    /// What `job` weighs against the cores: see [`Job::weight`].
    pub fn weight(&self, job: usize) -> u64 {
        self.jobs[job].weight()
    }

    /// Expected demand allows the job now; `beyond` says it needs the measured idle cores.
    fn demand_allows(&self, job: usize) -> Option<bool> {
        let Some(adaptive) = self.adaptive else { return Some(false) };
        if self.running == 0 {
            return Some(false);
        }
        let demand = &self.jobs[job].demand;
        if self.memory_used + demand.memory_kb > adaptive.memory_kb {
            return None;
        }
        let weight = self.weight(job);
        let within = self.demand_used + weight <= adaptive.capacity();
        if within {
            return Some(false);
        }
        // Saturated (more threads want a core than there are), nothing beyond the expectation:
        // as many tests as the cores serve, as a fixed count would run for tests that keep a
        // core busy, and the tests that wait beside them.
        if self.saturated || demand.calm || self.calm_running > 0 {
            return None;
        }
        // Half a core measured idle (or half the job's weight, if less) lets a job in: a test
        // that keeps a core busy often waits on itself too (a test that spins until a deadline
        // takes what CPU it gets), and the next measurement stops the run if it overshot.
        (u64::from(self.credit) >= self.jobs[job].share() / 2).then_some(true)
    }

    fn mark_loaded(&mut self) {
        for &job in &self.running_jobs {
            self.loaded[job] = true;
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
        let group_wait = std::time::Duration::ZERO;
        Some(Dispatch { job, attempt, slots, group_wait, loaded: false, lane: 0 })
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

    /// The limits are the machine's, not a count.
    pub fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    fn fits(&self, index: usize) -> bool {
        let job = &self.jobs[index];
        job.slots <= self.free_slots
            && job.slots <= self.category_free[job.category]
            && job.groups.iter().all(|&group| self.group_free[group] > 0)
            && self.demand_allows(index).is_some()
    }

    fn fits_but_for_groups(&self, job: usize) -> bool {
        let job = &self.jobs[job];
        job.slots <= self.free_slots && job.slots <= self.category_free[job.category]
    }

    fn take(&mut self, index: usize) {
        if self.demand_allows(index) == Some(true) {
            let share = u32::try_from(self.jobs[index].share()).unwrap_or(1000);
            self.credit = self.credit.saturating_sub(share);
        }
        let job = &self.jobs[index];
        self.free_slots -= job.slots;
        self.category_free[job.category] -= job.slots;
        for &group in &job.groups {
            self.group_free[group] -= 1;
        }
        self.running += 1;
        self.calm_running += usize::from(job.demand.calm);
        self.memory_used += job.demand.memory_kb;
        self.demand_used += self.weight(index);
        self.running_jobs.insert(index);
        // Oversubscribed by prun's own choice (more expected CPU than the cores' capacity), not
        // by others' load: that is what a failure under load is forgiven for.
        self.loaded[index] = false;
        if self.adaptive.is_some_and(|a| self.demand_used > a.capacity()) {
            self.mark_loaded();
        }
    }

    fn give_back(&mut self, index: usize) {
        let weight = self.weight(index);
        let job = &self.jobs[index];
        self.free_slots += job.slots;
        self.category_free[job.category] += job.slots;
        for &group in &job.groups {
            self.group_free[group] += 1;
        }
        self.running -= 1;
        self.calm_running -= usize::from(job.demand.calm);
        self.memory_used -= job.demand.memory_kb;
        self.demand_used -= weight;
        self.running_jobs.remove(&index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(slots: u32, groups: &[usize]) -> Job {
        Job { slots, groups: groups.to_vec(), ..Job::default() }
    }

    fn limits(threads: u32, groups: usize) -> Limits {
        Limits {
            threads,
            group_capacity: vec![1; groups],
            category_max_slots: vec![None],
            adaptive: None,
        }
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
        let mut d =
            Dispatcher::new(vec![Job { slots: 1, retries: 1, ..Job::default() }], &limits(1, 0));
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

    /// Moves logical time to the next end among `running` (attempts and the tick they end
    /// at), finishes the attempts that end then (`passed` says how each went) and returns the
    /// new time.
    fn advance(
        running: &mut Vec<(u64, Dispatch)>,
        d: &mut Dispatcher,
        passed: impl Fn(&Dispatch) -> bool,
    ) -> u64 {
        let now = running.iter().map(|(end, _)| *end).min().expect("something runs");
        let (done, still): (Vec<_>, Vec<_>) =
            std::mem::take(running).into_iter().partition(|(end, _)| *end == now);
        *running = still;
        for (_, dispatch) in done {
            d.finish(dispatch, passed(&dispatch));
        }
        now
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
                adaptive: None,
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
                    ..Job::default()
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
                now = advance(&mut running, &mut d, |dispatch| dispatch.attempt > failing_attempts[dispatch.job]);
            }
            prop_assert!(d.is_done());
            // Every job ran exactly once, plus one run per failed attempt it was allowed to retry.
            for job in 0..jobs.len() {
                let expected = failing_attempts[job].min(jobs[job].retries) + 1;
                prop_assert_eq!(runs[job], expected, "job {}", job);
            }
        }
    }

    fn adaptive(threads: u32, millicores: u32, memory_kb: u64) -> Limits {
        Limits {
            threads,
            group_capacity: vec![1],
            category_max_slots: vec![None],
            adaptive: Some(Adaptive { millicores, memory_kb }),
        }
    }

    fn weighing(millicores: u32) -> Job {
        Job { demand: Demand { millicores, ..Demand::default() }, ..Job::default() }
    }

    #[test]
    fn tests_that_wait_run_many_to_a_core_up_to_the_ceiling() {
        // 100 tests that each used a tenth of a core: 22 fit two cores and their eighth, and
        // the ceiling is 16.
        let jobs = vec![weighing(100); 100];
        let mut d = Dispatcher::new(jobs, &adaptive(16, 2000, u64::MAX));
        let started = std::iter::from_fn(|| d.next_runnable()).count();
        assert_eq!(started, 16);
        let mut d = Dispatcher::new(vec![weighing(100); 100], &adaptive(64, 2000, u64::MAX));
        assert_eq!(std::iter::from_fn(|| d.next_runnable()).count(), 22);
    }

    #[test]
    fn tests_that_wait_run_beside_tests_that_keep_every_core_busy() {
        let mut jobs = vec![weighing(1000); 4];
        jobs.extend(vec![weighing(LIGHTEST); 100]);
        let mut d = Dispatcher::new(jobs, &adaptive(256, 2000, u64::MAX));
        let started: Vec<usize> = std::iter::from_fn(|| d.next_runnable()).map(|d| d.job).collect();
        // Two burners, one a core, never a third; and as many waits as a quarter core holds.
        assert_eq!(started[..2], [0, 1]);
        assert!(started[2..].iter().all(|&job| job >= 4));
        assert_eq!(started.len(), 2 + 250 / LIGHTEST as usize);
        assert!(!d.was_loaded(0));
        // On 64 cores, the room beside them is half a core, not a core: 64 burners at once.
        let mut d = Dispatcher::new(vec![weighing(1000); 100], &adaptive(256, 64_000, u64::MAX));
        assert_eq!(std::iter::from_fn(|| d.next_runnable()).count(), 64);
    }

    #[test]
    fn unknown_tests_weigh_a_core_until_the_machine_shows_idle_cores() {
        let mut d = Dispatcher::new(vec![Job::default(); 10], &adaptive(64, 2000, u64::MAX));
        assert_eq!(std::iter::from_fn(|| d.next_runnable()).count(), 2);
        // 1.2 cores measured idle: one more test now (it needs half a core idle, and takes a
        // core of the credit), and no more until the next measurement.
        d.observe(Load { idle_millicores: 1200, saturated: false });
        assert!(d.next_runnable().is_some());
        assert_eq!(d.next_runnable(), None);
        d.observe(Load { idle_millicores: 2000, saturated: false });
        assert_eq!(std::iter::from_fn(|| d.next_runnable()).count(), 2);
        // Every running test saw the machine oversubscribed (5 tests of a core on 2 cores).
        assert!((0..5).all(|job| d.was_loaded(job)));
        // Saturated: nothing more starts until the tests are back within the cores.
        d.observe(Load { idle_millicores: 2000, saturated: true });
        assert_eq!(d.next_runnable(), None);
    }

    #[test]
    fn memory_holds_tests_back_but_one_always_runs() {
        let heavy = Job {
            demand: Demand { millicores: 10, memory_kb: 600, calm: false },
            ..Job::default()
        };
        let mut d = Dispatcher::new(vec![heavy.clone(); 3], &adaptive(64, 2000, 1000));
        assert_eq!(std::iter::from_fn(|| d.next_runnable()).count(), 1);
        let mut d = Dispatcher::new(
            vec![Job { demand: Demand { memory_kb: 5000, ..heavy.demand }, ..heavy }],
            &adaptive(64, 2000, 1000),
        );
        assert!(d.next_runnable().is_some());
    }

    #[test]
    fn a_calm_test_starts_only_within_the_cores_and_keeps_the_run_there() {
        let calm = Job {
            demand: Demand { millicores: 100, calm: true, ..Demand::default() },
            ..Job::default()
        };
        let mut d = Dispatcher::new(
            vec![weighing(1000), calm, weighing(1000), Job::default()],
            &adaptive(64, 2000, u64::MAX),
        );
        let first = d.next_runnable().unwrap();
        // The calm test weighs a whole core: it fits beside the first.
        assert_eq!(d.next_runnable().unwrap().job, 1);
        d.observe(Load { idle_millicores: 2000, saturated: false });
        // Idle cores do not let more in while it runs.
        assert_eq!(d.next_runnable(), None);
        d.finish(first, true);
        assert_eq!(d.next_runnable().unwrap().job, 2);
    }

    /// A generated adaptive suite: jobs with demands, how long each runs, and the load the
    /// machine reports at each step.
    #[derive(Debug, Clone)]
    struct Loaded {
        jobs: Vec<Job>,
        ticks: Vec<u32>,
        limits: Limits,
        loads: Vec<Load>,
    }

    fn loaded_suite() -> impl Strategy<Value = Loaded> {
        let limits = (1u32..40, 1u32..5, 100u64..3000)
            .prop_map(|(ceiling, cores, memory)| adaptive(ceiling, cores * 1000, memory));
        let job = (
            0u32..3000,
            0u64..800,
            prop::bool::weighted(0.1),
            1u32..4,
            prop::bool::weighted(0.2),
            1u32..10,
        );
        let load = (0u32..4000, prop::bool::weighted(0.2))
            .prop_map(|(idle_millicores, saturated)| Load { idle_millicores, saturated });
        (limits, prop::collection::vec(job, 0..60), prop::collection::vec(load, 1..20)).prop_map(
            |(limits, raw, loads)| {
                let mut suite = Loaded { jobs: vec![], ticks: vec![], limits, loads };
                for (millicores, memory_kb, calm, slots, grouped, ticks) in raw {
                    let demand = Demand { millicores, memory_kb, calm };
                    let groups = if grouped { vec![0] } else { vec![] };
                    suite.jobs.push(Job { slots, groups, demand, ..Job::default() });
                    suite.ticks.push(ticks);
                }
                suite
            },
        )
    }

    proptest! {
        /// Adaptive admission in logical time with a fake load signal: at every admission the
        /// ceiling, memory and demand hold (demand beyond the cores only on measured idle
        /// cores, never while saturated or beside a calm test), and no job that fits the cores
        /// waits.
        #[test]
        fn adaptive_admission_keeps_its_promises(suite in loaded_suite()) {
            let Loaded { jobs, ticks, limits, loads } = suite;
            let adaptive = limits.adaptive.unwrap();
            let cores = adaptive.capacity();
            let mut d = Dispatcher::new(jobs.clone(), &limits);
            let mut running: Vec<(u64, Dispatch)> = Vec::new();
            let mut started = vec![false; jobs.len()];
            let mut now = 0u64;
            let mut step = 0usize;
            loop {
                let load = loads[step % loads.len()];
                step += 1;
                d.observe(load);
                let mut credit = u64::from(load.idle_millicores);
                loop {
                    let demand: u64 = running.iter().map(|(_, r)| d.weight(r.job)).sum();
                    let memory: u64 = running.iter().map(|(_, r)| jobs[r.job].demand.memory_kb).sum();
                    let calm_running = running.iter().any(|(_, r)| jobs[r.job].demand.calm);
                    let Some(dispatch) = d.next_runnable() else { break };
                    let job = &jobs[dispatch.job];
                    let weight = d.weight(dispatch.job);
                    if !running.is_empty() {
                        prop_assert!(memory + job.demand.memory_kb <= adaptive.memory_kb);
                        if demand + weight > cores {
                            prop_assert!(!load.saturated && !calm_running && !job.demand.calm);
                            prop_assert!(credit >= weight.min(1000) / 2);
                            credit = credit.saturating_sub(weight.min(1000));
                        }
                    }
                    started[dispatch.job] = true;
                    running.push((now + u64::from(ticks[dispatch.job]), dispatch));
                    let slots: u32 = running.iter().map(|(_, r)| r.slots).sum();
                    prop_assert!(slots <= limits.threads.max(1));
                }
                // No waiting job would fit the cores and every other limit.
                let demand: u64 = running.iter().map(|(_, r)| d.weight(r.job)).sum();
                let memory: u64 = running.iter().map(|(_, r)| jobs[r.job].demand.memory_kb).sum();
                let slots: u32 = running.iter().map(|(_, r)| r.slots).sum();
                let group_busy = running.iter().any(|(_, r)| !jobs[r.job].groups.is_empty());
                for (index, job) in jobs.iter().enumerate().filter(|(i, _)| !started[*i]) {
                    let fits_otherwise = slots + job.slots.clamp(1, limits.threads.max(1)) <= limits.threads.max(1)
                        && (!group_busy || job.groups.is_empty())
                        && memory + job.demand.memory_kb <= adaptive.memory_kb;
                    if fits_otherwise && !running.is_empty() {
                        prop_assert!(demand + d.weight(index) > cores, "job {} waits", index);
                    }
                }
                if running.is_empty() {
                    break;
                }
                now = advance(&mut running, &mut d, |_| true);
            }
            prop_assert!(d.is_done());
        }
    }
}
