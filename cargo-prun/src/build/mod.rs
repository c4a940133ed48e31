//! Discover, part one: build the tests with cargo and find their executables.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::Message;
use serde::{Deserialize, Serialize};

pub(crate) mod fresh;
pub(crate) mod runner;

/// A test executable cargo built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TestBinary {
    /// `package` for a library's unit tests, `package::target` for anything else, as nextest
    /// names them.
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    /// Its package's directory: where cargo test runs it.
    pub(crate) package_dir: PathBuf,
    pub(crate) package_name: String,
    /// Cargo's kind of the target: `lib`, `test`, `bin`, `bench`, `example`, `proc-macro`.
    #[serde(default)]
    pub(crate) kind: String,
    /// What it runs under, from cargo's config (`target.<triple>.runner`): read for each run,
    /// never cached with the build.
    #[serde(skip)]
    pub(crate) runner: Option<runner::Runner>,
    /// Variables its tests see beyond those of every test: `OUT_DIR` when its package has a
    /// build script (as cargo test sets it), and from an archive, where the workspace's
    /// programs were unpacked (`CARGO_BIN_EXE_NAME`).
    #[serde(default)]
    pub(crate) env: Vec<(String, String)>,
}

impl TestBinary {
    /// A command that runs this binary as cargo test would: under the target's runner when
    /// cargo's config sets one.
    pub(crate) fn command(&self) -> Command {
        let (program, args) = self.program();
        let mut command = Command::new(program);
        command.args(args);
        command
    }

    /// The same, to start as a test process (one that dies with the run).
    pub(crate) fn test_command(&self) -> crate::os::TestCommand {
        let (program, args) = self.program();
        let mut command = crate::os::TestCommand::new(program);
        command.args(args);
        command
    }

    /// What runs it: the runner, its arguments and this binary; or this binary.
    fn program(&self) -> (&Path, Vec<&std::ffi::OsStr>) {
        match &self.runner {
            Some(runner) => {
                let args = runner.args.iter().map(AsRef::as_ref);
                (&runner.program, args.chain([self.path.as_os_str()]).collect())
            }
            None => (&self.path, Vec::new()),
        }
    }

    /// What to call it in an error about starting it.
    pub(crate) fn describe(&self) -> String {
        match &self.runner {
            Some(runner) => format!(
                "{} under the runner {} (set by {})",
                self.path.display(),
                runner.program.display(),
                runner.source
            ),
            None => self.path.display().to_string(),
        }
    }
}

/// What `cargo test --no-run` built: the test executables, and what cargo said the build read
/// (for [`fresh`], which decides whether the next run must ask cargo again).
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) binaries: Vec<TestBinary>,
    pub(crate) reads: fresh::Reads,
    /// The workspace's programs built beside the tests (`[[bin]]` targets, which a test may run
    /// as `CARGO_BIN_EXE_NAME`): target name and path.
    pub(crate) programs: Vec<(String, PathBuf)>,
}

/// Runs `cargo test --no-run` with `args`; cargo's own messages and errors go to stderr as
/// cargo shows them. Err carries cargo's exit code.
pub(crate) fn build(args: &[String]) -> Result<Built, i32> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["test", "--no-run", "--message-format=json-render-diagnostics"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| {
            eprintln!("error: failed to run cargo: {err}");
            crate::exit::BUILD_FAILED
        })?;
    let mut binaries = Vec::new();
    let mut reads = fresh::Reads::default();
    let (mut programs, mut out_dirs) = (Vec::new(), Vec::new());
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for message in Message::parse_stream(stdout).flatten() {
        match message {
            Message::CompilerArtifact(artifact) => {
                reads.artifact(&artifact);
                let Some(path) = artifact.executable else { continue };
                if !artifact.profile.test {
                    if artifact.target.kind.iter().any(|kind| kind.to_string() == "bin") {
                        programs.push((artifact.target.name.clone(), path.into()));
                    }
                    continue;
                }
                let package_name = package_name(&artifact.package_id.repr)
                    .unwrap_or_else(|| artifact.target.name.clone());
                let kind =
                    artifact.target.kind.first().map(ToString::to_string).unwrap_or_default();
                let id = if kind == "lib" || kind == "proc-macro" {
                    package_name.clone()
                } else {
                    format!("{package_name}::{}", artifact.target.name)
                };
                let package_dir = artifact
                    .manifest_path
                    .parent()
                    .map(|p| p.as_std_path().to_owned())
                    .unwrap_or_default();
                binaries.push(TestBinary {
                    id,
                    path: path.into(),
                    package_dir,
                    package_name,
                    kind,
                    runner: None,
                    env: Vec::new(),
                });
            }
            Message::BuildScriptExecuted(script) => {
                reads.build_script(&script);
                if let Some(name) = package_name(&script.package_id.repr) {
                    out_dirs.push((name, script.out_dir.clone().into_std_path_buf()));
                }
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(|_| crate::exit::BUILD_FAILED)?;
    if !status.success() {
        return Err(crate::exit::BUILD_FAILED);
    }
    binaries.sort_by(|a, b| a.id.cmp(&b.id));
    // The last output cargo reported for a package is the one its tests were built with.
    for binary in &mut binaries {
        if let Some((_, dir)) = out_dirs.iter().rev().find(|(name, _)| *name == binary.package_name)
        {
            binary.env.push(("OUT_DIR".to_owned(), dir.display().to_string()));
        }
    }
    Ok(Built { binaries, reads, programs })
}

/// The package name in a package id spec: `…/dir#name@1.0.0`, or `…/name#1.0.0` when the
/// name is the last segment of the URL.
fn package_name(id: &str) -> Option<String> {
    let (url, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _version)) => Some(name.to_owned()),
        None => url.trim_end_matches('/').rsplit('/').next().map(str::to_owned),
    }
}

/// The workspace's target directory (`cargo metadata`, so that `CARGO_TARGET_DIR`,
/// `.cargo/config.toml` and `--target-dir` all count): where prun keeps its history.
pub(crate) fn target_dir(
    manifest_path: Option<&Path>,
    flag: Option<&Path>,
) -> Result<PathBuf, WorkspaceError> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let mut command = cargo_metadata::MetadataCommand::new();
    command.no_deps();
    if let Some(path) = manifest_path {
        command.manifest_path(path);
    }
    let metadata = command.exec()?;
    Ok(metadata.target_directory.into_std_path_buf())
}

/// `cargo metadata` could not say where the workspace's target directory is.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the workspace: {0}")]
pub(crate) struct WorkspaceError(#[from] cargo_metadata::Error);

/// The target directory the binaries were built in: the nearest directory above them that
/// cargo marked with `CACHEDIR.TAG`. `None` for a layout prun does not know.
pub(crate) fn target_dir_of(binaries: &[TestBinary]) -> Option<PathBuf> {
    let binary = binaries.first()?;
    binary.path.ancestors().skip(1).find(|dir| dir.join("CACHEDIR.TAG").is_file()).map(Into::into)
}

/// The toolchain's library directories, as cargo test puts them on the library path: the
/// target libdir (libstd, which a proc-macro crate's tests link dynamically) and the sysroot's
/// lib. Under cargo (`CARGO` is the toolchain's cargo) they are beside it; otherwise one `rustc`
/// call, which can run while cargo builds.
pub(crate) fn toolchain_dirs() -> Vec<PathBuf> {
    if let Some(dirs) = std::env::var_os("CARGO").and_then(|cargo| dirs_beside(Path::new(&cargo))) {
        return dirs;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).args(["--print", "target-libdir", "--print", "sysroot"]).output();
    let Some(out) = out.ok().filter(|out| out.status.success()) else { return Vec::new() };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(libdir), Some(sysroot)) => vec![libdir, sysroot.join("lib")],
        _ => Vec::new(),
    }
}

/// `SYSROOT/bin/cargo` → `SYSROOT/lib/rustlib/HOST/lib` and `SYSROOT/lib`, where HOST is this
/// machine's target (the one whose directory holds a dynamic libstd).
fn dirs_beside(cargo: &Path) -> Option<Vec<PathBuf>> {
    let sysroot = cargo.parent()?.parent()?;
    let rustlib = sysroot.join("lib").join("rustlib");
    let host = std::fs::read_dir(&rustlib).ok()?.flatten().find(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(std::env::consts::ARCH) && name.contains(std::env::consts::OS);
        ours && std::fs::read_dir(entry.path().join("lib")).is_ok_and(|mut files| {
            files.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().starts_with("libstd-")))
        })
    })?;
    Some(vec![host.path().join("lib"), sysroot.join("lib")])
}

/// `LD_LIBRARY_PATH` for test processes: the toolchain's libraries and the build's deps
/// directories, before whatever the environment already had.
pub(crate) fn dylib_path(toolchain: Vec<PathBuf>, binaries: &[TestBinary]) -> std::ffi::OsString {
    let mut dirs = toolchain;
    for binary in binaries {
        if let Some(deps) = binary.path.parent() {
            for dir in [deps.to_owned(), deps.parent().unwrap_or(deps).to_owned()] {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_toolchain_dirs_beside_cargo_are_rustcs() {
        let Ok(out) = std::process::Command::new("rustc")
            .args(["--print", "target-libdir", "--print", "sysroot"])
            .output()
        else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines().map(std::path::PathBuf::from);
        let (libdir, sysroot) = (lines.next().unwrap(), lines.next().unwrap());
        let cargo = sysroot.join("bin").join("cargo");
        assert_eq!(super::dirs_beside(&cargo), Some(vec![libdir, sysroot.join("lib")]));
    }

    #[test]
    fn reads_package_names_from_ids() {
        let name = |id| super::package_name(id).unwrap();
        assert_eq!(name("path+file:///work/examples/shop#0.1.0"), "shop");
        assert_eq!(name("path+file:///work/prun-core#prun@0.1.0"), "prun");
        assert_eq!(
            name("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0"),
            "serde"
        );
    }
}
