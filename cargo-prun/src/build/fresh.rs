//! Whether the last build is still current, decided without starting cargo.
//!
//! `cargo test --no-run` costs a cargo start-up and a check of every fingerprint even when
//! nothing changed: 25 ms here, most of a small crate's whole run. So after a build prun writes
//! a stamp of everything cargo's own check would look at — the dep-info rustc wrote for each
//! local unit, build scripts' `rerun-if-changed` paths (or their whole package), the manifests,
//! lock files, cargo configs and toolchain files of every directory above, the directories
//! cargo finds targets in — and of the test binaries themselves: each one's size and
//! modification time. The stamp is filed under a key of the command line, the working
//! directory and the whole environment. A later run with the same key whose every recorded
//! file is as it was runs those binaries without asking cargo.
//!
//! Whatever prun cannot account for writes no stamp, and the next run asks cargo as every run
//! used to: a unit without dep-info, a build script without its output, a file changed while
//! cargo was building, no `CARGO` (prun not started by cargo, so the toolchain is unknown).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Built, TestBinary};

/// Changes whenever what a stamp records or means changes.
const VERSION: u32 = 3;
/// Stamps kept per target directory, one file per command line and environment: a test suite
/// that runs cargo prun in many environments must not push out the stamp of the usual one.
const KEEP: usize = 64;
/// Under the target directory.
const DIR: &str = "prun/builds";
/// Variables no build reads: a shell's, that change between two commands, and prun's own
/// (a fresh history directory or run id must not cost a cargo check).
const NOT_READ_BY_BUILDS: [&str; 8] = [
    "_",
    "OLDPWD",
    "SHLVL",
    "PRUN_HISTORY_DIR",
    "PRUN_RUN_ID",
    "PRUN_TEST_THREADS",
    "PRUN_CONFIG",
    "PRUN_PROFILE",
];

/// What cargo's messages said the build read.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Each local unit (a workspace member or path dependency): the dep-info rustc wrote for
    /// it, and its root source file (which tells what the dep-info's relative paths are
    /// relative to).
    units: Vec<(PathBuf, PathBuf)>,
    /// Local packages: id → directory.
    packages: BTreeMap<String, PathBuf>,
    /// Local executables, as a test may run one (`CARGO_BIN_EXE_NAME`).
    executables: Vec<PathBuf>,
    /// Build scripts that ran or were fresh: package id, and the file cargo keeps their
    /// output in.
    scripts: Vec<(String, PathBuf)>,
    /// Cargo said something prun cannot follow: no stamp.
    unknown: bool,
}

impl Reads {
    pub(crate) fn artifact(&mut self, artifact: &cargo_metadata::Artifact) {
        let id = &artifact.package_id.repr;
        // Registry and git sources never change in place; the lock file pins which one is used.
        if !id.starts_with("path+") {
            return;
        }
        if let Some(dir) = artifact.manifest_path.parent() {
            self.packages.insert(id.clone(), dir.as_std_path().to_owned());
        }
        self.executables.extend(artifact.executable.iter().map(|e| e.as_std_path().to_owned()));
        let output = artifact.filenames.first().map(|f| f.as_std_path());
        match output.and_then(|output| dep_info_of(output, &artifact.target.name)) {
            Some(dep_info) => {
                self.units.push((dep_info, artifact.target.src_path.as_std_path().to_owned()));
            }
            None => self.unknown = true,
        }
    }

    pub(crate) fn build_script(&mut self, script: &cargo_metadata::BuildScript) {
        match script.out_dir.parent() {
            Some(dir) => {
                self.scripts.push((script.package_id.repr.clone(), dir.join("output").into()));
            }
            None => self.unknown = true,
        }
    }
}

/// rustc writes `deps/NAME-HASH.d` beside `deps/libNAME-HASH.rlib`, `deps/NAME-HASH` and the
/// like, NAME being the target's name with `_` for `-`.
fn dep_info_of(output: &Path, target: &str) -> Option<PathBuf> {
    let crate_name = target.replace('-', "_");
    let file_name = output.file_name()?.to_str()?;
    let Some(at) = file_name.find(&format!("{crate_name}-")) else {
        return uplifted_dep_info(output, &crate_name);
    };
    let stem = file_name[at..].split('.').next()?;
    Some(output.with_file_name(format!("{stem}.d")))
}

/// A binary is reported where cargo linked it out of `deps/` (`debug/my-bin`, a hard link to
/// `debug/deps/my_bin-HASH`), and a build script beside the file it was linked from
/// (`build/PKG-HASH/build-script-build` and `build_script_build-HASH`): the dep-info is that of
/// the file that is the same file.
fn uplifted_dep_info(output: &Path, crate_name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(output).ok()?;
    let dir = output.parent()?;
    let prefix = format!("{crate_name}-");
    [dir.join("deps"), dir.to_owned()].into_iter().find_map(|deps| {
        std::fs::read_dir(&deps).ok()?.flatten().find_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let same = name.starts_with(&prefix)
                && !name.contains('.')
                && entry.metadata().is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
            same.then(|| deps.join(format!("{name}.d")))
        })
    })
}

/// The files a Makefile-style dep-info names as prerequisites (rustc escapes spaces only).
fn dep_info_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(at) = line.find(": ").or_else(|| line.ends_with(':').then(|| line.len() - 1))
        else {
            continue;
        };
        let mut current = String::new();
        let mut chars = line[at + 1..].chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => current.push(chars.next().unwrap_or(' ')),
                ' ' => {
                    if !current.is_empty() {
                        files.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            files.push(current);
        }
    }
    files
}

/// The paths a build script's output tells cargo to watch.
fn rerun_if_changed(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|line| {
            line.strip_prefix("cargo::rerun-if-changed=")
                .or_else(|| line.strip_prefix("cargo:rerun-if-changed="))
        })
        .collect()
}

/// A run's command line, working directory and environment, hashed: stamps are only compared
/// within one key. `None` when cargo did not start prun (the toolchain is then unknown).
#[derive(Debug, Clone)]
pub(crate) struct Key {
    hash: String,
    cargo: PathBuf,
    cwd: PathBuf,
}

impl Key {
    pub(crate) fn new(cargo_args: &[String]) -> Option<Key> {
        let cargo = PathBuf::from(std::env::var_os("CARGO")?);
        let cwd = std::env::current_dir().ok()?;
        Some(Key::of(cargo, cwd, cargo_args, std::env::vars_os()))
    }

    fn of(
        cargo: PathBuf,
        cwd: PathBuf,
        cargo_args: &[String],
        env: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Key {
        let mut env: Vec<_> =
            env.filter(|(name, _)| !NOT_READ_BY_BUILDS.iter().any(|v| name == v)).collect();
        env.sort();
        // A different hash after a Rust upgrade only costs one cargo check.
        let mut hasher = std::hash::DefaultHasher::new();
        (VERSION, env!("CARGO_PKG_VERSION"), cargo_args, &cwd, env).hash(&mut hasher);
        Key { hash: format!("{:016x}", hasher.finish()), cargo, cwd }
    }
}

/// A file's size and modification time, or that it is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    len: u64,
    modified_ns: u128,
}

fn seen(path: &Path) -> Option<Seen> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(Seen { len: meta.len(), modified_ns: modified.as_nanos() })
}

#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    version: u32,
    inputs: Vec<(PathBuf, Option<Seen>)>,
    binaries: Vec<TestBinary>,
}

/// Where the stamps of this run's target directory would be, without asking cargo: the
/// `--target-dir` given, else `CARGO_TARGET_DIR`, else the nearest `target/` above `start`
/// that cargo made. A target directory set in a cargo config is not found: such runs always
/// ask cargo.
pub(crate) fn target_dir(flag: Option<&Path>, start: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    if let Some(dir) = flag {
        return Some(cwd.join(dir));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(cwd.join(dir));
    }
    start.ancestors().map(|dir| dir.join("target")).find(|dir| dir.join("CACHEDIR.TAG").is_file())
}

/// The test binaries of the last build with this key, if nothing it read has changed since.
pub(crate) fn unchanged(key: &Key, target_dir: &Path) -> Option<Vec<TestBinary>> {
    let path = target_dir.join(DIR).join(format!("{}.json", key.hash));
    let bytes = crate::files::read_state(&path)
        .inspect_err(|err| eprintln!("warning: build stamp not read ({err}); asking cargo"))
        .ok()??;
    let stamp: Stamp = serde_json::from_slice(&bytes).ok()?;
    let current =
        stamp.version == VERSION && stamp.inputs.iter().all(|(path, then)| seen(path) == *then);
    current.then_some(stamp.binaries)
}

/// Files the stamp of `built` for `key`, if everything the build read can be accounted for and
/// nothing changed while cargo built (`started`: before cargo was started). Best effort: a
/// stamp not written only means the next run asks cargo.
pub(crate) fn record(key: &Key, started: SystemTime, built: &Built) {
    let Some(target_dir) = super::target_dir_of(&built.binaries) else { return };
    let Some(paths) = inputs(key, built) else { return };
    let started_ns = started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let then = seen(&path);
        // Changed while cargo built: cargo may have read it before or after the change.
        if then.is_some_and(|s| s.modified_ns >= started_ns) && !path.starts_with(&target_dir) {
            return;
        }
        inputs.push((path, then));
    }
    let dir = target_dir.join(DIR);
    let stamp = Stamp { version: VERSION, inputs, binaries: built.binaries.clone() };
    if let Ok(json) = serde_json::to_vec(&stamp)
        && std::fs::create_dir_all(&dir).is_ok()
    {
        let file = dir.join(format!("{}.json", key.hash));
        let _ = crate::files::write_atomically(&file, &json);
        prune(&dir, &file);
    }
}

/// Removes the least recently written stamps beyond KEEP (never `current`, just written).
fn prune(dir: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut stamps: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path() != current)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if stamps.len() >= KEEP {
        stamps.sort();
        for (_, path) in &stamps[..=stamps.len() - KEEP] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Every path cargo's freshness check depends on for this build; `None` when prun cannot tell.
fn inputs(key: &Key, built: &Built) -> Option<BTreeSet<PathBuf>> {
    let reads = &built.reads;
    if reads.unknown {
        return None;
    }
    let mut paths = BTreeSet::new();
    // The toolchain: an update replaces these.
    let bin = key.cargo.parent()?;
    paths.insert(key.cargo.clone());
    paths.insert(bin.join(format!("rustc{}", std::env::consts::EXE_SUFFIX)));

    paths.extend(compiled(reads)?);

    let mut config_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    config_dirs.extend(key.cwd.ancestors().map(Path::to_owned));
    for dir in reads.packages.values() {
        config_dirs.extend(dir.ancestors().map(Path::to_owned));
        // Cargo finds targets by listing these (`build.rs`, `src/lib.rs`, `tests/*.rs`,
        // `tests/*/main.rs`, ...): a new file in one changes the directory's time.
        paths.insert(dir.clone());
        paths.insert(dir.join("src"));
        for sub in ["src/bin", "tests", "examples", "benches"] {
            let sub = dir.join(sub);
            paths.insert(sub.clone());
            if let Ok(entries) = std::fs::read_dir(&sub) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        paths.insert(entry.path());
                    }
                }
            }
        }
        // A new member under a `members = ["crates/*"]` glob changes the members' parent,
        // unless that is the workspace's own directory or above it (which change for any
        // reason at all).
        if let Some(parent) = dir.parent().filter(|parent| !key.cwd.starts_with(parent)) {
            paths.insert(parent.to_owned());
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    for dir in &config_dirs {
        for name in [
            "Cargo.toml",
            "Cargo.lock",
            ".cargo/config.toml",
            ".cargo/config",
            "rust-toolchain",
            "rust-toolchain.toml",
        ] {
            paths.insert(dir.join(name));
        }
    }
    if let Some(home) = &cargo_home {
        paths.extend([home.join("config.toml"), home.join("config")]);
    }

    for (package, output) in &reads.scripts {
        let text = std::fs::read_to_string(output).ok()?;
        let local = reads.packages.get(package);
        let watched = rerun_if_changed(&text);
        match local {
            // Without `rerun-if-changed`, cargo reruns a local build script when anything in
            // its package changes.
            Some(dir) if watched.is_empty() => walk(dir, &mut paths),
            Some(dir) => watched.iter().for_each(|path| walk(&dir.join(path), &mut paths)),
            // A registry package's own files never change; what it watches outside may.
            None => watched
                .iter()
                .map(Path::new)
                .filter(|path| path.is_absolute())
                .for_each(|path| walk(path, &mut paths)),
        }
    }
    paths.extend(built.binaries.iter().map(|binary| binary.path.clone()));
    paths.extend(reads.executables.iter().cloned());
    Some(paths)
}

/// Every file rustc read to compile the build's local units (their sources, and what they
/// `include!`), from the dep-info it wrote; `None` when prun cannot tell.
pub(crate) fn compiled(reads: &Reads) -> Option<BTreeSet<PathBuf>> {
    let mut paths = BTreeSet::new();
    for (dep_info, src_path) in &reads.units {
        let text = std::fs::read_to_string(dep_info).ok()?;
        let files = dep_info_files(&text);
        // Relative paths are relative to where cargo ran rustc: the root source file's path
        // ends in its own relative path.
        let base = files
            .iter()
            .map(Path::new)
            .filter(|file| file.is_relative())
            .find_map(|file| strip_suffix(src_path, file));
        for file in files.iter().map(Path::new) {
            match (file.is_relative(), &base) {
                (false, _) => paths.insert(file.to_owned()),
                (true, Some(base)) => paths.insert(base.join(file)),
                (true, None) => return None,
            };
        }
    }
    if reads.unknown {
        return None;
    }
    Some(paths)
}

/// `path` without `suffix` at its end, if it ends so.
fn strip_suffix(path: &Path, suffix: &Path) -> Option<PathBuf> {
    let mut base = path.to_owned();
    for part in suffix.components().rev() {
        if base.file_name() != Some(part.as_os_str()) {
            return None;
        }
        base.pop();
    }
    Some(base)
}

/// `path` and, for a directory, everything under it but `.git` and cargo's target directories.
fn walk(path: &Path, paths: &mut BTreeSet<PathBuf>) {
    paths.insert(path.to_owned());
    let Ok(entries) = std::fs::read_dir(path) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if entry.file_name() != ".git" && !path.join("CACHEDIR.TAG").exists() {
                walk(&path, paths);
            }
        } else {
            paths.insert(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dep_info_beside_each_kind_of_output() {
        let d = |output: &str, target| dep_info_of(Path::new(output), target).unwrap();
        assert_eq!(d("/t/deps/libmy_lib-0a1b.rlib", "my-lib"), Path::new("/t/deps/my_lib-0a1b.d"));
        assert_eq!(d("/t/deps/smallvec-6f97", "smallvec"), Path::new("/t/deps/smallvec-6f97.d"));
        assert_eq!(d("/t/deps/liblib-99.so", "lib"), Path::new("/t/deps/lib-99.d"));
        assert_eq!(
            d("/t/build/x-1/build_script_build-1", "build-script-build"),
            Path::new("/t/build/x-1/build_script_build-1.d")
        );
        // A binary, linked out of deps/ beside another build of it.
        let temp = tempfile::tempdir().unwrap();
        let deps = temp.path().join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(deps.join("my_bin-1"), "one").unwrap();
        std::fs::write(deps.join("my_bin-2"), "two").unwrap();
        std::fs::hard_link(deps.join("my_bin-2"), temp.path().join("my-bin")).unwrap();
        assert_eq!(
            dep_info_of(&temp.path().join("my-bin"), "my-bin"),
            Some(deps.join("my_bin-2.d"))
        );
        assert_eq!(dep_info_of(&temp.path().join("gone"), "gone"), None);
        // A build script, as cargo reports it: the link beside the file it was linked from.
        let script = temp.path().join("build").join("x-1");
        std::fs::create_dir_all(&script).unwrap();
        std::fs::write(script.join("build_script_build-1"), "script").unwrap();
        std::fs::hard_link(script.join("build_script_build-1"), script.join("build-script-build"))
            .unwrap();
        assert_eq!(
            dep_info_of(&script.join("build-script-build"), "build-script-build"),
            Some(script.join("build_script_build-1.d"))
        );
    }

    #[test]
    fn reads_the_prerequisites_of_a_dep_info() {
        let text = "/t/deps/a-1.d: src/lib.rs src/my\\ mod.rs /abs/inc.txt\n\n\
                    /t/deps/a-1: src/lib.rs src/my\\ mod.rs /abs/inc.txt\n\nsrc/lib.rs:\n\
                    src/my\\ mod.rs:\n/abs/inc.txt:\n\n# env-dep:CARGO_PKG_NAME=a\n";
        let mut files = dep_info_files(text);
        files.sort();
        files.dedup();
        assert_eq!(files, ["/abs/inc.txt", "src/lib.rs", "src/my mod.rs"]);
    }

    #[test]
    fn reads_both_spellings_of_rerun_if_changed() {
        let output = "cargo:rerun-if-changed=build.rs\ncargo:rustc-cfg=x\n\
                      cargo::rerun-if-changed=proto/\ncargo:rerun-if-env-changed=X\n";
        assert_eq!(rerun_if_changed(output), ["build.rs", "proto/"]);
    }

    #[test]
    fn relative_paths_resolve_against_the_root_source_files_base() {
        let base =
            strip_suffix(Path::new("/ws/crates/a/src/lib.rs"), Path::new("crates/a/src/lib.rs"));
        assert_eq!(base, Some(PathBuf::from("/ws")));
        assert_eq!(strip_suffix(Path::new("/ws/a/src/lib.rs"), Path::new("b/src/lib.rs")), None);
    }

    #[test]
    fn the_key_is_the_command_line_directory_and_environment_but_prun_s_own() {
        let key = |args: &[&str], env: &[(&str, &str)]| {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            let env = env.iter().map(|(k, v)| ((*k).into(), (*v).into()));
            Key::of("/tc/bin/cargo".into(), "/ws".into(), &args, env).hash
        };
        let base = key(&["--release"], &[("RUSTFLAGS", "-Cx"), ("PATH", "/bin")]);
        assert_eq!(base, key(&["--release"], &[("PATH", "/bin"), ("RUSTFLAGS", "-Cx")]));
        assert_ne!(base, key(&[], &[("RUSTFLAGS", "-Cx"), ("PATH", "/bin")]));
        assert_ne!(base, key(&["--release"], &[("RUSTFLAGS", "-Cy"), ("PATH", "/bin")]));
        assert_ne!(base, key(&["--release"], &[("PATH", "/bin")]));
        let ours = [("RUSTFLAGS", "-Cx"), ("PATH", "/bin"), ("PRUN_HISTORY_DIR", "/h"), ("_", "x")];
        assert_eq!(base, key(&["--release"], &ours));
    }

    /// A package on disk and what cargo would have said of building it.
    fn package(dir: &Path) -> (Key, Built) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::create_dir_all(dir.join("target/debug/deps")).unwrap();
        std::fs::write(dir.join("target/CACHEDIR.TAG"), "").unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"a\"\n").unwrap();
        std::fs::write(dir.join("src/lib.rs"), "mod other;\n").unwrap();
        std::fs::write(dir.join("src/other.rs"), "").unwrap();
        let deps = dir.join("target/debug/deps");
        std::fs::write(deps.join("a-1.d"), "a-1: src/lib.rs src/other.rs\n").unwrap();
        std::fs::write(deps.join("a-1"), "binary").unwrap();
        let toolchain = dir.join("toolchain/bin");
        std::fs::create_dir_all(&toolchain).unwrap();
        std::fs::write(toolchain.join("cargo"), "").unwrap();
        std::fs::write(toolchain.join("rustc"), "").unwrap();
        let key = Key { hash: "k".into(), cargo: toolchain.join("cargo"), cwd: dir.to_owned() };
        let mut reads = Reads::default();
        reads.packages.insert("path+file:///a#0.1.0".into(), dir.to_owned());
        reads.units.push((deps.join("a-1.d"), dir.join("src/lib.rs")));
        let binary = TestBinary {
            kind: "test".into(),
            id: "a".into(),
            path: deps.join("a-1"),
            package_dir: dir.to_owned(),
            package_name: "a".into(),
            runner: None,
            env: Vec::new(),
        };
        (key, Built { binaries: vec![binary], reads, programs: Vec::new() })
    }

    /// Files `built` as a build that started a moment before `package` wrote anything.
    fn recorded(dir: &Path) -> (Key, Built) {
        let before = SystemTime::now() - std::time::Duration::from_secs(3600);
        let (key, built) = package(dir);
        // Files written "during" the build: recorded only when they are older than its start.
        record(&key, before, &built);
        assert!(unchanged(&key, &dir.join("target")).is_none(), "written during the build");
        record(&key, SystemTime::now() + std::time::Duration::from_secs(1), &built);
        (key, built)
    }

    #[test]
    fn a_stamp_holds_until_anything_the_build_read_changes() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let (key, _) = recorded(dir);
        let target = dir.join("target");
        let found = unchanged(&key, &target).expect("nothing changed");
        assert_eq!(found[0].path, target.join("debug/deps/a-1"));

        let other = Key { hash: "other".into(), ..key.clone() };
        assert!(unchanged(&other, &target).is_none(), "another command line or environment");

        std::fs::write(dir.join("src/other.rs"), "// edited").unwrap();
        assert!(unchanged(&key, &target).is_none(), "a source file the dep-info names");
    }

    #[test]
    fn stamps_beyond_the_newest_sixty_four_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("target").join(DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..70 {
            std::fs::write(dir.join(format!("old{i}.json")), "{}").unwrap();
        }
        let (key, _) = recorded(temp.path());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), KEEP);
        assert!(unchanged(&key, &temp.path().join("target")).is_some());
    }

    #[test]
    fn new_targets_configs_and_rebuilt_binaries_are_changes() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 5] = [
            ("a new integration test", |dir| std::fs::write(dir.join("tests/new.rs"), "").unwrap()),
            ("a cargo config", |dir| {
                std::fs::create_dir_all(dir.join(".cargo")).unwrap();
                std::fs::write(dir.join(".cargo/config.toml"), "").unwrap();
            }),
            ("a lock file", |dir| std::fs::write(dir.join("Cargo.lock"), "").unwrap()),
            ("the binary", |dir| std::fs::remove_file(dir.join("target/debug/deps/a-1")).unwrap()),
            ("the toolchain", |dir| {
                std::fs::write(dir.join("toolchain/bin/rustc"), "new").unwrap()
            }),
        ];
        for (what, change) in changes {
            let temp = tempfile::tempdir().unwrap();
            let (key, _) = recorded(temp.path());
            change(temp.path());
            assert!(unchanged(&key, &temp.path().join("target")).is_none(), "{what}");
        }
    }

    #[test]
    fn a_unit_without_dep_info_or_a_script_without_output_writes_no_stamp() {
        let temp = tempfile::tempdir().unwrap();
        let (key, mut built) = package(temp.path());
        built.reads.scripts.push(("path+file:///a#0.1.0".into(), temp.path().join("missing")));
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        record(&key, later, &built);
        assert!(unchanged(&key, &temp.path().join("target")).is_none());

        built.reads.scripts.clear();
        built.reads.unknown = true;
        record(&key, later, &built);
        assert!(unchanged(&key, &temp.path().join("target")).is_none());
    }

    #[test]
    fn a_local_build_script_that_watches_nothing_makes_its_package_an_input() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let (key, mut built) = package(dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/table.csv"), "1").unwrap();
        std::fs::write(dir.join("target/output"), "cargo:rustc-cfg=x\n").unwrap();
        built.reads.scripts.push(("path+file:///a#0.1.0".into(), dir.join("target/output")));
        record(&key, SystemTime::now() + std::time::Duration::from_secs(1), &built);
        assert!(unchanged(&key, &dir.join("target")).is_some());
        std::fs::write(dir.join("data/table.csv"), "22").unwrap();
        assert!(unchanged(&key, &dir.join("target")).is_none());
    }
}
