//! Reporting: the run's summary, and the reporters that render events for people and tools.

pub(crate) mod libtest;
mod summary;

pub(crate) use summary::Summary;
