//! Discover, part two: ask every test binary what it is and what tests it holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use prun::protocol::{Catalog, CatalogTest, HANDSHAKE_ENV};
use serde::{Deserialize, Serialize};

use crate::build::TestBinary;
use crate::files::write_atomically;

/// How a binary runs its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    /// A prun harness: long-lived worker processes take its tests over the protocol.
    Prun,
    /// A libtest binary (plain `#[test]`): batches of its tests in a process, one after another.
    Libtest,
    /// A libtest-like harness that takes one filter only (libtest-mimic's, under
    /// datatest-stable, ui_test and many custom harnesses): one test per process, as nextest
    /// runs every test.
    OneFilter,
}

#[derive(Debug, Clone)]
pub(crate) struct Binary {
    pub(crate) binary: TestBinary,
    pub(crate) kind: Kind,
    /// Its tests in declaration order (prun) or libtest's order (by name).
    pub(crate) tests: Vec<CatalogTest>,
    /// A libtest binary's `#[bench]` functions, which prun does not run but which a libtest
    /// filter can still choose.
    pub(crate) benchmarks: Vec<String>,
}

/// Why a test binary could not be listed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot run {binary}: {source}")]
    Start { binary: String, source: std::io::Error },
    #[error("{binary} is not a test binary prun can run: `--list` failed with {status}\n{stderr}")]
    ListFailed { binary: String, status: std::process::ExitStatus, stderr: String },
    #[error("{binary}: unreadable prun catalog ({source}); rebuild it with this prun")]
    Catalog { binary: String, source: serde_json::Error },
    #[error(
        "{binary} speaks prun protocol {speaks}, this cargo-prun {}: use one prun version",
        prun::protocol::VERSION
    )]
    Protocol { binary: String, speaks: u32 },
    #[error(
        "{binary}: asked for its tests with `--list --format terse`, it printed {line:?} where a \
         test harness prints `NAME: test` lines, so its `main` does not take libtest's \
         arguments and prun cannot run its tests. Leave it out (select the targets to run \
         with --test NAME, or its package's with -p/--exclude), or make it a harness \
         (`prun::main!()`, or libtest-mimic)"
    )]
    NotAHarness { binary: String, line: String },
    #[error("listing {0} panicked")]
    Panicked(String),
}

/// Lists one binary's tests. A prun binary answers the handshake with its catalog; anything else
/// is taken for libtest and listed the way nextest lists it.
fn discover(binary: TestBinary, dylib_path: &std::ffi::OsStr) -> Result<Binary, Error> {
    let list = |extra: &[&str]| {
        let output = binary
            .command()
            .args(["--list", "--format", "terse"])
            .args(extra)
            .env(HANDSHAKE_ENV, "1")
            .env("LD_LIBRARY_PATH", dylib_path)
            .current_dir(&binary.package_dir)
            .output()
            .map_err(|source| Error::Start { binary: binary.describe(), source })?;
        if !output.status.success() {
            return Err(Error::ListFailed {
                binary: binary.describe(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim_end().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let listed = list(&[])?;
    if let Some(first) = listed.lines().next().filter(|line| line.starts_with("{\"prun_catalog\""))
    {
        let catalog: Catalog = serde_json::from_str(first)
            .map_err(|source| Error::Catalog { binary: binary.id.clone(), source })?;
        if catalog.prun_catalog != prun::protocol::VERSION {
            return Err(Error::Protocol {
                binary: binary.id.clone(),
                speaks: catalog.prun_catalog,
            });
        }
        return Ok(Binary {
            binary,
            kind: Kind::Prun,
            tests: catalog.tests,
            benchmarks: Vec::new(),
        });
    }
    // A `harness = false` target whose `main` ignores its arguments ran just now as a program:
    // it is not run again to list its ignored tests, and it is not dropped without a word.
    if let Err(line) = listing(&listed) {
        return Err(Error::NotAHarness { binary: binary.id.clone(), line: line.to_owned() });
    }
    // Its ignored tests, and whether it takes several filters at once (libtest does;
    // libtest-mimic's harnesses take one, and fail on two): both at once.
    let probe = || {
        binary
            .command()
            .args(["--list", "--format", "terse", "--exact", "--", "prun-probe-1", "prun-probe-2"])
            .env(HANDSHAKE_ENV, "1")
            .env("LD_LIBRARY_PATH", dylib_path)
            .current_dir(&binary.package_dir)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let (ignored, many_filters) = std::thread::scope(|scope| {
        let ignored = scope.spawn(|| list(&["--ignored"]));
        let many_filters = probe();
        let panicked = || Err(Error::Panicked(binary.id.clone()));
        (ignored.join().unwrap_or_else(|_| panicked()), many_filters)
    });
    let ignored: std::collections::HashSet<String> =
        listing(&ignored?).unwrap_or_default().into_iter().collect();
    let tests = listing(&listed)
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            let ignore = ignored.contains(&name);
            plain_test(name, ignore)
        })
        .collect();
    let kind = if many_filters { Kind::Libtest } else { Kind::OneFilter };
    let benchmarks = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect();
    Ok(Binary { binary, kind, tests, benchmarks })
}

/// A test of a binary that is not prun's: all it has is a name, and whether it is ignored.
pub(crate) fn plain_test(name: String, ignore: bool) -> CatalogTest {
    CatalogTest {
        name,
        category: "unit".to_owned(),
        groups: Vec::new(),
        timeout_ms: None,
        retries: None,
        threads: 1,
        ignore,
        ignore_reason: None,
        isolate: false,
        at: None,
    }
}

/// The test names in libtest's `--list --format terse` (`NAME: test`; benchmarks are not
/// run). A name may hold a newline (custom harnesses allow any name): its lines are joined up to
/// the one that ends the entry. `Err` holds the first line that belongs to no entry.
fn listing(listed: &str) -> Result<Vec<String>, &str> {
    let mut names = Vec::new();
    let mut pending: Option<(String, &str)> = None;
    for line in listed.lines() {
        let (joined, first) = match pending.take() {
            Some((name, first)) => (format!("{name}\n{line}"), first),
            None if line.is_empty() => continue,
            None => (line.to_owned(), line),
        };
        if let Some(name) = joined.strip_suffix(": test") {
            names.push(name.to_owned());
        } else if !joined.ends_with(": benchmark") {
            pending = Some((joined, first));
        }
    }
    match pending {
        Some((_, first)) => Err(first),
        None => Ok(names),
    }
}

/// What binaries said when they were last listed, kept in `target/prun/catalogs.bin` and good
/// while a binary's file is unchanged (same size and modification time): an unchanged binary
/// is not started again to be listed. Compact, as the history is (postcard; a plain binary's
/// tests are their names and which are ignored), since it is read every run. Only a cache:
/// unreadable, it is rebuilt.
pub(crate) struct CatalogCache {
    path: PathBuf,
    entries: HashMap<PathBuf, Cached>,
    changed: bool,
}

/// What the cache file starts with.
const CACHE_MAGIC: &[u8] = b"prun catalogs 1\n";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    /// The file's size and modification time (nanoseconds since the epoch) when listed.
    len: u64,
    modified_ns: u128,
    kind: Kind,
    tests: CachedTests,
    benchmarks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CachedTests {
    /// A plain binary's: its names, and the indices of the ignored ones.
    Plain { names: Vec<String>, ignored: Vec<u32> },
    /// A prun binary's catalog, in the protocol's JSON.
    Prun(String),
}

impl CachedTests {
    fn of(binary: &Binary) -> Option<CachedTests> {
        Some(match binary.kind {
            Kind::Prun => CachedTests::Prun(serde_json::to_string(&binary.tests).ok()?),
            Kind::Libtest | Kind::OneFilter => CachedTests::Plain {
                names: binary.tests.iter().map(|t| t.name.clone()).collect(),
                ignored: (0..binary.tests.len())
                    .filter(|&i| binary.tests[i].ignore)
                    .filter_map(|i| u32::try_from(i).ok())
                    .collect(),
            },
        })
    }

    fn tests(&self) -> Option<Vec<CatalogTest>> {
        match self {
            CachedTests::Prun(json) => serde_json::from_str(json).ok(),
            CachedTests::Plain { names, ignored } => {
                let mut tests: Vec<CatalogTest> =
                    names.iter().map(|name| plain_test(name.clone(), false)).collect();
                for &i in ignored {
                    tests.get_mut(i as usize)?.ignore = true;
                }
                Some(tests)
            }
        }
    }
}

/// A binary's file as the cache keys it.
fn stamp(path: &Path) -> Option<(u64, u128)> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((metadata.len(), modified.as_nanos()))
}

impl CatalogCache {
    pub(crate) fn load(dir: &Path) -> CatalogCache {
        let path = dir.join("catalogs.bin");
        let entries = match crate::files::read_state(&path) {
            Ok(bytes) => {
                bytes.and_then(|bytes| postcard::from_bytes(bytes.strip_prefix(CACHE_MAGIC)?).ok())
            }
            Err(err) => {
                eprintln!("warning: catalog cache not read ({err}); listing every binary");
                None
            }
        };
        let entries = entries.unwrap_or_default();
        CatalogCache { path, entries, changed: false }
    }

    fn get(&self, binary: &TestBinary) -> Option<Binary> {
        let cached = self.entries.get(&binary.path)?;
        let (len, modified_ns) = stamp(&binary.path)?;
        if (cached.len, cached.modified_ns) != (len, modified_ns) {
            return None;
        }
        Some(Binary {
            binary: binary.clone(),
            kind: cached.kind,
            tests: cached.tests.tests()?,
            benchmarks: cached.benchmarks.clone(),
        })
    }

    fn put(&mut self, binary: &Binary) {
        if let Some((len, modified_ns)) = stamp(&binary.binary.path)
            && let Some(tests) = CachedTests::of(binary)
        {
            let cached = Cached {
                len,
                modified_ns,
                kind: binary.kind,
                tests,
                benchmarks: binary.benchmarks.clone(),
            };
            self.entries.insert(binary.binary.path.clone(), cached);
            self.changed = true;
        }
    }

    /// Saves what changed; a cache that cannot be written is only slower next time.
    pub(crate) fn save(&self) {
        if self.changed
            && let Some(dir) = self.path.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && let Ok(bytes) = postcard::to_extend(&self.entries, CACHE_MAGIC.to_vec())
        {
            let _ = write_atomically(&self.path, &bytes);
        }
    }
}

/// Every binary's catalog, from the cache or by asking it (several at a time).
pub(crate) fn discover_all(
    built: Vec<TestBinary>,
    dylib_path: &std::ffi::OsStr,
    cache: &mut CatalogCache,
) -> Result<Vec<Binary>, Error> {
    let listed: Vec<Result<(Binary, bool), Error>> = std::thread::scope(|scope| {
        let cache = &*cache;
        let handles: Vec<_> = built
            .into_iter()
            .map(|binary| {
                scope.spawn(move || match cache.get(&binary) {
                    Some(known) => Ok((known, false)),
                    None => discover(binary, dylib_path).map(|listed| (listed, true)),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Panicked("a binary".to_owned()))))
            .collect()
    });
    let mut binaries = Vec::with_capacity(listed.len());
    for result in listed {
        let (binary, new) = result?;
        if new {
            cache.put(&binary);
        }
        binaries.push(binary);
    }
    Ok(binaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_read_entry_by_entry_and_a_name_may_hold_a_newline() {
        let listed = "a: test\nbench_x: benchmark\ntwo\nlines: test\n\nb c: test\n";
        assert_eq!(listing(listed), Ok(vec!["a".into(), "two\nlines".into(), "b c".into()]));
        assert_eq!(listing("hello from a program\n"), Err("hello from a program"));
        assert_eq!(listing(""), Ok(Vec::new()));
    }

    #[test]
    fn a_cached_catalog_is_used_while_its_binary_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tests-0123");
        std::fs::write(&path, "a binary").unwrap();
        let built = TestBinary {
            kind: "test".into(),
            id: "crate::tests".into(),
            path: path.clone(),
            package_dir: dir.path().into(),
            package_name: "crate".into(),
            runner: None,
            env: Vec::new(),
        };
        let listed = Binary {
            binary: built.clone(),
            kind: Kind::Libtest,
            tests: vec![plain_test("a".into(), false), plain_test("b c".into(), true)],
            benchmarks: vec!["bench_x".into()],
        };
        let mut cache = CatalogCache::load(dir.path());
        assert!(cache.get(&built).is_none());
        cache.put(&listed);
        cache.save();
        let cache = CatalogCache::load(dir.path());
        let got = cache.get(&built).unwrap();
        assert_eq!(
            (got.kind, &got.tests, &got.benchmarks),
            (Kind::Libtest, &listed.tests, &listed.benchmarks)
        );
        // A prun binary's catalog keeps everything its attributes said.
        let prun_path = dir.path().join("prun-0123");
        std::fs::write(&prun_path, "a prun binary").unwrap();
        let prun_binary = TestBinary { path: prun_path, ..built.clone() };
        let mut declared = plain_test("slow_one".into(), false);
        (declared.category, declared.groups, declared.at) =
            ("slow".into(), vec!["db".into()], Some("tests/a.rs:3".into()));
        let prun = Binary {
            binary: prun_binary.clone(),
            kind: Kind::Prun,
            tests: vec![declared],
            benchmarks: Vec::new(),
        };
        let mut cache = cache;
        cache.put(&prun);
        cache.save();
        let cache = CatalogCache::load(dir.path());
        assert_eq!(cache.get(&prun_binary).unwrap().tests, prun.tests);
        // Rebuilt (another size here), it is listed again.
        std::fs::write(&path, "a rebuilt binary").unwrap();
        assert!(cache.get(&built).is_none());
        // A cache file that cannot be read is an empty cache.
        std::fs::write(dir.path().join("catalogs.bin"), "garbage").unwrap();
        assert!(CatalogCache::load(dir.path()).entries.is_empty());
    }
}
