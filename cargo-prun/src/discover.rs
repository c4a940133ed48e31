//! Discover, part two: ask every test binary what it is and what tests it holds.

use std::process::Command;

use prun::protocol::{Catalog, CatalogTest, HANDSHAKE_ENV};

use crate::build::TestBinary;

/// How a binary runs its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A prun harness: long-lived worker processes take its tests over the protocol.
    Prun,
    /// A libtest binary (plain `#[test]`): one process per test.
    Libtest,
}

#[derive(Debug, Clone)]
pub(crate) struct Binary {
    pub(crate) binary: TestBinary,
    pub(crate) kind: Kind,
    /// Its tests in declaration order (prun) or libtest's order (by name).
    pub(crate) tests: Vec<CatalogTest>,
}

/// Lists one binary's tests. A prun binary answers the handshake with its catalog; anything else
/// is taken for libtest and listed the way nextest lists it.
pub(crate) fn discover(binary: TestBinary, dylib_path: &std::ffi::OsStr) -> Result<Binary, String> {
    let list = |extra: &[&str]| {
        let output = Command::new(&binary.path)
            .args(["--list", "--format", "terse"])
            .args(extra)
            .env(HANDSHAKE_ENV, "1")
            .env("LD_LIBRARY_PATH", dylib_path)
            .current_dir(&binary.package_dir)
            .output()
            .map_err(|err| format!("cannot run {}: {err}", binary.path.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} is not a test binary prun can run: `--list` failed with {}\n{}",
                binary.path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // A plain binary is listed twice (all its tests, then the ignored ones): both at once.
    let (listed, ignored) = std::thread::scope(|scope| {
        let ignored = scope.spawn(|| list(&["--ignored"]));
        (list(&[]), ignored.join().unwrap_or_else(|_| Err("listing panicked".to_owned())))
    });
    let listed = listed?;
    if let Some(first) = listed.lines().next().filter(|line| line.starts_with("{\"prun_catalog\""))
    {
        let catalog: Catalog = serde_json::from_str(first).map_err(|err| {
            format!("{}: unreadable prun catalog ({err}); rebuild it with this prun", binary.id)
        })?;
        if catalog.prun_catalog != prun::protocol::VERSION {
            return Err(format!(
                "{} speaks prun protocol {}, this cargo-prun {}: use one prun version",
                binary.id,
                catalog.prun_catalog,
                prun::protocol::VERSION
            ));
        }
        return Ok(Binary { binary, kind: Kind::Prun, tests: catalog.tests });
    }
    let ignored: Vec<String> = names(&ignored?);
    let tests = names(&listed)
        .into_iter()
        .map(|name| CatalogTest {
            ignore: ignored.contains(&name),
            name,
            category: "unit".to_owned(),
            groups: Vec::new(),
            timeout_ms: None,
            retries: None,
            threads: 1,
            ignore_reason: None,
            isolate: false,
        })
        .collect();
    Ok(Binary { binary, kind: Kind::Libtest, tests })
}

/// Test names from libtest's `--list --format terse` (benchmarks are not run).
fn names(listed: &str) -> Vec<String> {
    listed.lines().filter_map(|line| line.strip_suffix(": test")).map(str::to_owned).collect()
}
