//! Drives a [`Dispatcher`] with a rayon pool: each of its threads runs one worker loop that
//! takes the next runnable job, runs it through an [`Executor`], and gives it back.
//!
//! Workers wait only when nothing pending can start; a job whose group is busy stays in the
//! dispatcher's queue. Jobs are never queued on rayon itself, so a test that calls `par_iter`
//! and waits in `join` can only help with rayon work, never pick up another test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::dispatcher::{Dispatch, Dispatcher, Load};

/// Runs jobs; the scheduler knows nothing else about them.
pub trait Executor: Send + Sync + 'static {
    /// What a worker keeps between the jobs it runs (e.g. its worker-scoped fixtures).
    type Worker;
    /// What an attempt produced, handed back to [`Executor::finished`].
    type Report: Send;

    fn worker(&self, id: usize) -> Self::Worker;

    /// Runs one attempt; returns whether it passed, and its report.
    fn execute(&self, worker: &Self::Worker, dispatch: Dispatch) -> (bool, Self::Report);

    /// Called once per attempt, before its job is given back (so before any retry of it
    /// starts), with whether it will run again.
    fn finished(&self, dispatch: Dispatch, report: Self::Report, will_retry: bool);
}

struct Shared {
    dispatcher: Mutex<Queue>,
    /// Signalled whenever resources are given back or the run ends.
    changed: Condvar,
}

/// How often an adaptive run measures the machine: five of the kernel's ticks a core, enough
/// to tell idle cores apart, and soon enough that cores do not sit idle long while tests wait.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs every job on `threads` workers and returns when the dispatcher is done. An adaptive
/// dispatcher also gets the machine's load every 50 ms (see [`Sampler`]).
pub fn run<E: Executor>(threads: usize, dispatcher: Dispatcher, executor: Arc<E>) {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|id| format!("prun-worker-{id}"))
        .build()
        .expect("failed to start the worker threads");
    let adaptive = dispatcher.is_adaptive();
    let queue = Queue { dispatcher, held_since: HashMap::new(), lanes: (0..threads).collect() };
    let shared = Shared { dispatcher: Mutex::new(queue), changed: Condvar::new() };
    std::thread::scope(|scope| {
        if adaptive {
            scope.spawn(|| sample(&shared));
        }
        pool.broadcast(|worker| work(&shared, &*executor, worker.index()));
    });
}

/// Feeds the machine's measured load to the dispatcher until the run is over.
fn sample(shared: &Shared) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut sampler = Sampler::new(u32::try_from(cores).unwrap_or(u32::MAX));
    let mut queue = shared.dispatcher.lock();
    let mut next = Instant::now() + SAMPLE_EVERY;
    while !queue.dispatcher.is_done() {
        // Woken early by a finished test, it waits on: a reading over a moment shorter than
        // the kernel's tick would say nothing, and would take the credit the last one gave.
        if !shared.changed.wait_until(&mut queue, next).timed_out() {
            continue;
        }
        next = Instant::now() + SAMPLE_EVERY;
        if let Some(load) = sampler.read() {
            queue.dispatcher.observe(load);
            shared.changed.notify_all();
        }
    }
}

/// The machine's load from `/proc/stat`, one reading after another.
#[derive(Debug)]
pub struct Sampler {
    cores: u32,
    last: Option<crate::usage::CpuTimes>,
}

impl Sampler {
    pub fn new(cores: u32) -> Sampler {
        Sampler { cores, last: crate::usage::CpuTimes::now() }
    }

    /// The load since the last reading: idle cores, and whether more threads want a core than
    /// there are (this one, reading, not counted).
    pub fn read(&mut self) -> Option<Load> {
        let now = crate::usage::CpuTimes::now()?;
        let last = self.last.replace(now)?;
        let idle_millicores = now.idle_millicores_since(&last, self.cores);
        let saturated = now.runnable.saturating_sub(1) > u64::from(self.cores);
        Some(Load { idle_millicores, saturated })
    }
}

/// The dispatcher, since when each job it passed over for a busy group has waited, and the
/// lanes no running attempt holds.
struct Queue {
    dispatcher: Dispatcher,
    held_since: HashMap<usize, Instant>,
    lanes: std::collections::BTreeSet<usize>,
}

impl Queue {
    fn next_runnable(&mut self) -> Option<Dispatch> {
        let next = self.dispatcher.next_runnable();
        let held = self.dispatcher.take_held_by_group();
        if !held.is_empty() {
            let now = Instant::now();
            self.held_since.extend(held.into_iter().map(|job| (job, now)));
        }
        let mut dispatch = next?;
        if let Some(since) = self.held_since.remove(&dispatch.job) {
            dispatch.group_wait = since.elapsed();
        }
        // One attempt per worker thread at most, so a lane is always free.
        dispatch.lane = self.lanes.pop_first().unwrap_or(0);
        Some(dispatch)
    }
}

fn work<E: Executor>(shared: &Shared, executor: &E, id: usize) {
    let state = executor.worker(id);
    loop {
        let dispatch = {
            let mut queue = shared.dispatcher.lock();
            loop {
                if let Some(dispatch) = queue.next_runnable() {
                    break Some(dispatch);
                }
                if queue.dispatcher.is_done() {
                    break None;
                }
                shared.changed.wait(&mut queue);
            }
        };
        let Some(mut dispatch) = dispatch else { break };
        let (passed, report) = executor.execute(&state, dispatch);
        // Reported before the job is given back: a retry must not report before its failure.
        let will_retry = {
            let queue = shared.dispatcher.lock();
            dispatch.loaded = queue.dispatcher.was_loaded(dispatch.job);
            queue.dispatcher.will_retry(dispatch, passed)
        };
        executor.finished(dispatch, report, will_retry);
        {
            let mut queue = shared.dispatcher.lock();
            queue.dispatcher.finish(dispatch, passed);
            queue.lanes.insert(dispatch.lane);
        }
        // Freed resources may let several waiting jobs start, and the run may be over.
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::dispatcher::{Job, Limits};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Jobs that record how many of each group run at once, with no clock involved.
    struct Recorder {
        jobs: Vec<Job>,
        in_group: Vec<AtomicUsize>,
        max_in_group: Vec<AtomicUsize>,
        runs: Vec<AtomicUsize>,
        fail_first: bool,
        /// (job, attempt) in the order `finished` saw them.
        reported: parking_lot::Mutex<Vec<(usize, u32)>>,
    }

    impl Executor for Recorder {
        type Worker = ();
        type Report = ();

        fn worker(&self, _id: usize) {}

        fn execute(&self, _worker: &(), dispatch: Dispatch) -> (bool, ()) {
            let job = &self.jobs[dispatch.job];
            for &group in &job.groups {
                let now = self.in_group[group].fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_group[group].fetch_max(now, Ordering::SeqCst);
            }
            // Some work in between, so overlaps have a chance to show.
            for _ in 0..200 {
                std::thread::yield_now();
            }
            for &group in &job.groups {
                self.in_group[group].fetch_sub(1, Ordering::SeqCst);
            }
            self.runs[dispatch.job].fetch_add(1, Ordering::SeqCst);
            (!(self.fail_first && dispatch.attempt == 1), ())
        }

        fn finished(&self, dispatch: Dispatch, _report: (), _will_retry: bool) {
            self.reported.lock().push((dispatch.job, dispatch.attempt));
        }
    }

    fn recorder(jobs: Vec<Job>, groups: usize, fail_first: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            runs: (0..jobs.len()).map(|_| AtomicUsize::new(0)).collect(),
            jobs,
            in_group: (0..groups).map(|_| AtomicUsize::new(0)).collect(),
            max_in_group: (0..groups).map(|_| AtomicUsize::new(0)).collect(),
            fail_first,
            reported: parking_lot::Mutex::default(),
        })
    }

    #[test]
    fn an_exclusive_group_never_overlaps_on_real_threads() {
        let jobs: Vec<Job> =
            (0..60).map(|i| Job { slots: 1, groups: vec![i % 2], ..Job::default() }).collect();
        let limits = Limits {
            threads: 4,
            group_capacity: vec![1, 2],
            category_max_slots: vec![None],
            adaptive: None,
        };
        let rec = recorder(jobs.clone(), 2, false);
        run(4, Dispatcher::new(jobs, &limits), rec.clone());
        assert_eq!(rec.max_in_group[0].load(Ordering::SeqCst), 1);
        assert!(rec.max_in_group[1].load(Ordering::SeqCst) <= 2);
        assert!(rec.runs.iter().all(|r| r.load(Ordering::SeqCst) == 1));
    }

    #[test]
    fn retries_run_again_and_the_run_ends() {
        let jobs: Vec<Job> =
            (0..10).map(|_| Job { slots: 1, retries: 2, ..Job::default() }).collect();
        let limits = Limits {
            threads: 3,
            group_capacity: vec![],
            category_max_slots: vec![None],
            adaptive: None,
        };
        let rec = recorder(jobs.clone(), 0, true);
        run(3, Dispatcher::new(jobs, &limits), rec.clone());
        assert!(rec.runs.iter().all(|r| r.load(Ordering::SeqCst) == 2));
        // Each job's failed first attempt is reported before its retry.
        let reported = rec.reported.lock();
        for job in 0..10 {
            let attempts: Vec<u32> =
                reported.iter().filter(|(j, _)| *j == job).map(|(_, a)| *a).collect();
            assert_eq!(attempts, [1, 2], "job {job}");
        }
    }
}
