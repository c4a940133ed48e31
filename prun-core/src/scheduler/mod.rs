//! Scheduling: which test runs when, on which worker. Knows nothing of what a test is; the
//! harness hands it jobs and an executor.

pub mod dispatcher;
pub mod pool;

pub use dispatcher::{Adaptive, Demand, Dispatch, Dispatcher, Job, LIGHTEST, Limits, Load};
pub use pool::{Executor, run};
