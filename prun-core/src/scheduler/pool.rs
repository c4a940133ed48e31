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

use super::dispatcher::{Dispatch, Dispatcher};

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

/// Runs every job on `threads` workers and returns when the dispatcher is done.
pub fn run<E: Executor>(threads: usize, dispatcher: Dispatcher, executor: Arc<E>) {
    let threads = threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|id| format!("prun-worker-{id}"))
        .build()
        .expect("failed to start the worker threads");
    let queue = Queue { dispatcher, held_since: HashMap::new() };
    let shared = Shared { dispatcher: Mutex::new(queue), changed: Condvar::new() };
    pool.broadcast(|worker| work(&shared, &*executor, worker.index()));
}

/// The dispatcher, and since when each job it passed over for a busy group has waited.
struct Queue {
    dispatcher: Dispatcher,
    held_since: HashMap<usize, Instant>,
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
        let Some(dispatch) = dispatch else { break };
        let (passed, report) = executor.execute(&state, dispatch);
        // Reported before the job is given back: a retry must not report before its failure.
        let will_retry = shared.dispatcher.lock().dispatcher.will_retry(dispatch, passed);
        executor.finished(dispatch, report, will_retry);
        shared.dispatcher.lock().dispatcher.finish(dispatch, passed);
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
        let jobs: Vec<Job> = (0..60)
            .map(|i| Job { slots: 1, groups: vec![i % 2], category: 0, retries: 0 })
            .collect();
        let limits =
            Limits { threads: 4, group_capacity: vec![1, 2], category_max_slots: vec![None] };
        let rec = recorder(jobs.clone(), 2, false);
        run(4, Dispatcher::new(jobs, &limits), rec.clone());
        assert_eq!(rec.max_in_group[0].load(Ordering::SeqCst), 1);
        assert!(rec.max_in_group[1].load(Ordering::SeqCst) <= 2);
        assert!(rec.runs.iter().all(|r| r.load(Ordering::SeqCst) == 1));
    }

    #[test]
    fn retries_run_again_and_the_run_ends() {
        let jobs: Vec<Job> =
            (0..10).map(|_| Job { slots: 1, groups: vec![], category: 0, retries: 2 }).collect();
        let limits = Limits { threads: 3, group_capacity: vec![], category_max_slots: vec![None] };
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
