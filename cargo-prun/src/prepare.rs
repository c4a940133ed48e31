//! What every command that runs tests starts with: the config, the build, discovery, and the
//! history of earlier runs.

use std::collections::HashMap;
use std::path::PathBuf;

use prun::config::Config;

use crate::build;
use crate::cli::BuildArgs;
use crate::discover::{self, Binary};
use crate::history::{History, Store};

pub(crate) struct Workspace {
    /// Where the run was started from (or the manifest's directory).
    pub(crate) root: PathBuf,
    pub(crate) config: Config,
    pub(crate) binaries: Vec<Binary>,
    pub(crate) dylib_path: std::ffi::OsString,
    pub(crate) history: Store,
    /// `.config/nextest.toml`, read when there is no prun.toml.
    pub(crate) nextest: Option<crate::nextest_config::NextestConfig>,
    /// Tests with a leak timeout of their own (nextest.toml's overrides), by `BINARY NAME`.
    pub(crate) leak_timeouts: HashMap<String, prun::config::LeakTimeout>,
    /// Where an archive (`--archive-file`) was unpacked: removed when the run ends.
    pub(crate) unpacked: Option<tempfile::TempDir>,
}

/// Why there is nothing to run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// cargo's build failed, and said why: the run ends with its exit code.
    #[error("the build failed (cargo exited with {0})")]
    BuildFailed(i32),
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    #[error(transparent)]
    Config(#[from] prun::config::ConfigError),
    #[error(transparent)]
    Runner(#[from] build::runner::Error),
    #[error(transparent)]
    Workspace(#[from] build::WorkspaceError),
    #[error(transparent)]
    Discover(#[from] discover::Error),
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    #[error(transparent)]
    Nextest(#[from] crate::nextest_config::Error),
}

impl Error {
    /// cargo's exit code when its build failed (it already said why).
    pub(crate) fn build_failed(&self) -> Option<i32> {
        match self {
            Error::BuildFailed(code) => Some(*code),
            _ => None,
        }
    }
}

/// Reads the config, builds the tests and asks each binary what it holds.
pub(crate) fn prepare(
    build_args: &BuildArgs,
    profile: Option<&str>,
    nextest_profile: Option<&str>,
) -> Result<Workspace, Error> {
    let cwd = std::env::current_dir().map_err(Error::CurrentDir)?;
    if let Some(file) = &build_args.archive_file {
        return from_archive(build_args, file, &cwd, profile, nextest_profile);
    }
    let root = match &build_args.manifest_path {
        Some(path) => path.parent().map(|p| cwd.join(p)).unwrap_or_else(|| cwd.clone()),
        None => cwd.clone(),
    };
    let config = Config::discover_with_profile(&root, profile)?;
    // What the binaries run under (cargo config's `target.<triple>.runner`), before building:
    // a bad setting is said before the build's minutes.
    let runner =
        build::runner::resolve(build_args.target.as_deref(), &build_args.cargo_config, &cwd)?;
    let toolchain = std::thread::spawn(build::toolchain_dirs);
    let mut built = build(build_args, &root).map_err(Error::BuildFailed)?;
    if let Some(runner) = &runner {
        eprintln!(
            "note: running the test binaries under {} (set by {})",
            runner.program.display(),
            runner.source
        );
        built.iter_mut().for_each(|binary| binary.runner = Some(runner.clone()));
    }
    let dylib_path = build::dylib_path(toolchain.join().unwrap_or_default(), &built);
    let history = history_store(
        build_args.manifest_path.as_deref(),
        build_args.target_dir.as_deref(),
        build::target_dir_of(&built),
    )?;
    history.read_ahead();
    let mut catalogs = discover::CatalogCache::load(history.dir());
    let binaries = discover::discover_all(built, &dylib_path, &mut catalogs)?;
    catalogs.save();
    let found = Found { root, binaries, dylib_path, history, unpacked: None };
    finish(found, config, nextest_profile)
}

/// The binaries to run and where, however they were found.
struct Found {
    root: PathBuf,
    binaries: Vec<Binary>,
    dylib_path: std::ffi::OsString,
    history: Store,
    unpacked: Option<tempfile::TempDir>,
}

/// `--archive-file`: the binaries of an archive, checked against this machine and the sources
/// at `--workspace-remap`; no cargo.
fn from_archive(
    build_args: &BuildArgs,
    file: &std::path::Path,
    cwd: &std::path::Path,
    profile: Option<&str>,
    nextest_profile: Option<&str>,
) -> Result<Workspace, Error> {
    let unpacked = crate::archive::open(build_args, file, cwd)?;
    let config = Config::discover_with_profile(&unpacked.root, profile)?;
    let history =
        history_store(None, build_args.target_dir.as_deref(), Some(unpacked.root.join("target")))?;
    let found = Found {
        root: unpacked.root,
        binaries: unpacked.binaries,
        dylib_path: unpacked.dylib_path,
        history,
        unpacked: Some(unpacked.dir),
    };
    finish(found, config, nextest_profile)
}

/// The config's last word: nextest.toml's groups and overrides when there is no prun.toml.
fn finish(
    found: Found,
    mut config: Config,
    nextest_profile: Option<&str>,
) -> Result<Workspace, Error> {
    let Found { root, mut binaries, dylib_path, history, unpacked } = found;
    // A project on nextest: its groups and overrides, when it has no prun.toml.
    let nextest = match config.source {
        Some(_) => None,
        None => crate::nextest_config::discover(&root, nextest_profile)?,
    };
    let mut leak_timeouts = HashMap::new();
    if let Some(nextest) = &nextest {
        eprintln!(
            "note: no prun.toml: reading {} (profile {})",
            nextest.path.display(),
            nextest.profile
        );
        leak_timeouts = nextest.apply(&mut config, &mut binaries);
        if let Some(warning) = nextest.warning() {
            eprintln!("{warning}");
        }
    }
    Ok(Workspace { root, config, binaries, dylib_path, history, nextest, leak_timeouts, unpacked })
}

/// The test binaries: those of the last build when nothing it read has changed since (see
/// [`build::fresh`]), else what cargo builds now. Err carries cargo's exit code.
fn build(build_args: &BuildArgs, root: &std::path::Path) -> Result<Vec<build::TestBinary>, i32> {
    if build_args.doc {
        // Doctests only: `cargo test --doc` builds what they need when it runs them.
        return Ok(Vec::new());
    }
    let args = build_args.to_cargo_args();
    let key = build::fresh::Key::new(&args);
    if let Some(key) = key.as_ref().filter(|_| !build_args.always_build) {
        let target_dir = build::fresh::target_dir(build_args.target_dir.as_deref(), root);
        if let Some(binaries) = target_dir.and_then(|dir| build::fresh::unchanged(key, &dir)) {
            eprintln!(
                "   Unchanged: nothing the test build read has changed, so cargo was not run \
                 (--always-build runs it)"
            );
            return Ok(binaries);
        }
    }
    let started = std::time::SystemTime::now();
    let built = build::build(&args)?;
    if let Some(key) = &key {
        build::fresh::record(key, started, &built);
    }
    Ok(built.binaries)
}

/// `PRUN_HISTORY_DIR`, else `TARGET_DIR/prun`: the `--target-dir` given, else the one the
/// build used (`built_in`), else the workspace's (`cargo metadata`).
pub(crate) fn history_store(
    manifest_path: Option<&std::path::Path>,
    target_dir: Option<&std::path::Path>,
    built_in: Option<PathBuf>,
) -> Result<Store, build::WorkspaceError> {
    if let Some(dir) = std::env::var_os("PRUN_HISTORY_DIR") {
        return Ok(Store::new(PathBuf::from(dir)));
    }
    let target_dir = match (target_dir, built_in) {
        (None, Some(built_in)) => built_in,
        _ => build::target_dir(manifest_path, target_dir)?,
    };
    Ok(Store::new(target_dir.join("prun")))
}

/// What earlier runs say of each test: its duration from a timings file (`--timings`), else
/// the history's typical one; and from the history, what it used and whether it failed under
/// load.
pub(crate) fn known_tests<'a>(
    history: &'a History,
    timings: Option<&std::path::Path>,
) -> Result<Earlier<'a>, crate::timings::Error> {
    let durations = timings.map(crate::timings::read).transpose()?;
    Ok(Earlier { history, durations })
}

/// [`known_tests`]: each test looked up as the plan asks for it (a run selects some of what
/// the history holds, and a map of all of it took a third of planning 20,001 tests).
pub(crate) struct Earlier<'a> {
    history: &'a History,
    durations: Option<HashMap<String, std::time::Duration>>,
}

impl crate::plan::KnownTests for Earlier<'_> {
    fn known(&self, id: &str) -> Option<crate::plan::Known> {
        let test = self.history.get(id);
        let duration = match &self.durations {
            Some(durations) => *durations.get(id)?,
            None => test?.typical()?,
        };
        let Some(test) = test else { return Some(duration.into()) };
        let (millicores, peak_kb) = test.demand().unzip();
        let longest = test.longest().unwrap_or(duration).max(duration);
        let (under_load, should_panic) = (test.under_load, test.should_panic);
        Some(crate::plan::Known {
            duration,
            longest,
            millicores,
            peak_kb,
            under_load,
            should_panic,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::{Ended, Record};
    use crate::plan::KnownTests;

    fn history() -> History {
        let mut history = History::default();
        let run = |duration_ms, cpu_ms| Record {
            duration_ms,
            outcome: Ended::Passed,
            attempts: 1,
            cpu_ms,
            peak_kb: Some(2048),
        };
        history.add("b waits", run(400, Some(40)));
        history.add("b never-measured", run(30, None));
        history.tests.get_mut("b waits").unwrap().under_load = true;
        history
    }

    #[test]
    fn what_earlier_runs_say_comes_from_the_history() {
        let history = history();
        let known = known_tests(&history, None).unwrap();
        let waits = known.known("b waits").unwrap();
        assert_eq!(waits.duration, Duration::from_millis(400));
        assert_eq!(
            (waits.millicores, waits.peak_kb, waits.under_load),
            (Some(100), Some(2048), true)
        );
        let unmeasured = known.known("b never-measured").unwrap();
        assert_eq!(
            (unmeasured.millicores, unmeasured.peak_kb, unmeasured.under_load),
            (None, None, false)
        );
    }

    #[test]
    fn a_timings_file_gives_the_durations_and_the_history_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timings.json");
        let tests = [
            ("b waits".to_owned(), Duration::from_millis(900)),
            ("b new".to_owned(), Duration::from_millis(5)),
        ];
        crate::timings::write_durations(&path, tests.into_iter(), Default::default()).unwrap();
        let history = history();
        let known = known_tests(&history, Some(&path)).unwrap();
        assert_eq!(known.known("b never-measured"), None, "only the file's tests");
        let waits = known.known("b waits").unwrap();
        assert_eq!(waits.duration, Duration::from_millis(900));
        assert_eq!((waits.millicores, waits.under_load), (Some(100), true));
        assert_eq!(known.known("b new"), Some(Duration::from_millis(5).into()));
    }
}
