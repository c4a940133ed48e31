//! What `#[prun::test]` registers: one static [`TestDef`] per test, collected by `inventory`.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::outcome::Failure;
use crate::protocol::CatalogTest;

/// A test as the attribute declared it. Built by the macro; not meant to be written by hand.
#[doc(hidden)]
#[derive(Debug)]
pub struct TestDef {
    pub module_path: &'static str,
    pub name: &'static str,
    pub file: &'static str,
    pub line: u32,
    pub category: &'static str,
    pub groups: &'static [&'static str],
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub threads: u32,
    pub ignore: bool,
    pub ignore_reason: Option<&'static str>,
    pub should_panic: ShouldPanic,
    pub isolate: bool,
    pub run: fn(&Ctx) -> Result<(), Failure>,
}

inventory::collect!(TestDef);

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShouldPanic {
    No,
    Yes,
    WithMessage(&'static str),
}

impl TestDef {
    /// The name libtest would print: the module path below the crate root, then the function.
    pub fn full_name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_crate, path)) => format!("{path}::{}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The test as a catalog lists it: what both halves plan from.
    pub fn catalog(&self) -> CatalogTest {
        CatalogTest {
            name: self.full_name(),
            category: self.category.to_owned(),
            groups: self.groups.iter().map(|g| (*g).to_owned()).collect(),
            timeout_ms: self.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            retries: self.retries,
            threads: self.threads,
            ignore: self.ignore,
            ignore_reason: self.ignore_reason.map(str::to_owned),
            isolate: self.isolate,
            at: Some(format!("{}:{}", self.file, self.line)),
        }
    }
}

/// Every registered test, in declaration order (file, then line): the order ties fall back to.
pub(crate) fn declared() -> Vec<&'static TestDef> {
    let mut tests: Vec<&'static TestDef> = inventory::iter::<TestDef>.into_iter().collect();
    tests.sort_by(|a, b| (a.file, a.line, a.name).cmp(&(b.file, b.line, b.name)));
    tests
}
