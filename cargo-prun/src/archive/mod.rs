//! Archives: build once, run anywhere. `cargo prun archive --archive-file FILE` builds the tests
//! and writes one file holding everything a run needs without cargo or the toolchain ([`pack`]);
//! `cargo prun --archive-file FILE [--workspace-remap DIR]` runs from it on another machine
//! ([`unpack`]).
//!
//! The file is a tar compressed with zstd. Its first entry is the manifest
//! (`prun-archive.json`); then the build's files under `target/` at the paths they had in the
//! target directory (test binaries, the programs tests run, build scripts' `OUT_DIR`s), so a
//! test that finds a file relative to its own executable still does; then the shared
//! libraries the binaries load that are not the system's, under `lib/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prun::protocol::CatalogTest;
use serde::{Deserialize, Serialize};

mod pack;
mod unpack;

pub(crate) use pack::archive;
pub(crate) use unpack::open;

/// The manifest's name in the archive.
const MANIFEST: &str = "prun-archive.json";
/// The manifest's format; a reader refuses another.
const FORMAT: u32 = 1;

/// What can go wrong making an archive or running from one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cargo prun archive needs --archive-file FILE: where to write it")]
    NoFile,
    #[error("--workspace-remap is for running from an archive, not for making one")]
    RemapWhileMaking,
    #[error("--doc: doctests are compiled by cargo when they run; an archive cannot hold them")]
    Doctests,
    #[error(
        "--archive-file runs the binaries the archive holds, so cargo's build flags do not \
         apply: {}. Choose what to build when making the archive (`cargo prun archive`), and \
         what to run with filters or -E 'package(NAME)'{}",
        .0.join(", "),
        if .0.iter().any(|flag| flag == "--manifest-path") {
            "; the sources' checkout is --workspace-remap DIR"
        } else {
            ""
        }
    )]
    BuildFlags(Vec<String>),
    #[error(
        "--archive-file {path}: its tests were built for {target}, which this {here} machine \
         cannot run (cargo's config can name a runner for it: target.{target}.runner)"
    )]
    OtherTarget { path: PathBuf, target: String, here: String },
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    #[error("cannot read the workspace: {0}")]
    Workspace(#[from] cargo_metadata::Error),
    #[error("{path} is not in the target directory {target_dir}: prun cannot archive it")]
    OutsideTarget { path: PathBuf, target_dir: PathBuf },
    #[error(
        "package {package} is at {dir}, outside the workspace {root}: an archive holds the tests \
         of the workspace's own packages"
    )]
    OutsideWorkspace { package: String, dir: PathBuf, root: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the archive {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot make a directory to unpack the archive in: {0}")]
    UnpackDir(std::io::Error),
    #[error("--archive-file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("--archive-file {path}: not an archive `cargo prun archive` made: {source}")]
    NotAnArchive { path: PathBuf, source: std::io::Error },
    #[error(
        "--archive-file {path}: made by cargo-prun {made_by} (format {format}); this is \
         cargo-prun {ours} (format {FORMAT}): run it with the cargo-prun that made it"
    )]
    OtherVersion { path: PathBuf, made_by: String, format: u32, ours: &'static str },
    #[error(
        "the workspace the archive was built in ({built_in}) is not on this machine: give \
         --workspace-remap DIR, the checkout of its sources"
    )]
    NoWorkspace { built_in: PathBuf },
    #[error("--workspace-remap {0} holds no Cargo.toml")]
    NoManifest(PathBuf),
    #[error(
        "--archive-file {path} was built from other sources than those in {root}: {count} of \
         the files it was compiled from differ, so its tests would run against code they were \
         not built from. Make the archive again from these sources, or give --workspace-remap \
         the checkout it was built from.\n{listed}"
    )]
    OtherSources { path: PathBuf, root: PathBuf, count: usize, listed: String },
    #[error(transparent)]
    Runner(#[from] crate::build::runner::Error),
    #[error(transparent)]
    Discover(#[from] crate::discover::Error),
    #[error(transparent)]
    TargetDir(#[from] crate::build::WorkspaceError),
}

/// What the archive holds, and where the build it came from was.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The cargo-prun that wrote it: catalogs are in its protocol.
    prun_version: String,
    /// The target the binaries were built for.
    target: String,
    /// Where the workspace was when it was built: the default for `--workspace-remap`.
    workspace_root: PathBuf,
    binaries: Vec<ArchivedBinary>,
    /// The workspace's programs (`[[bin]]` targets), for `CARGO_BIN_EXE_NAME`: name → path in
    /// the archive.
    programs: BTreeMap<String, String>,
    /// Build scripts' output directories, by package name: path in the archive.
    out_dirs: BTreeMap<String, String>,
    /// File names under `lib/`.
    libraries: Vec<String>,
    /// The stamp of the sources it was built from: each file rustc read inside the workspace
    /// (relative to its root) and its SHA-256. `None` when the build did not say.
    sources: Option<BTreeMap<String, String>>,
}

/// One test binary, and its catalog (so a run does not start it to list it).
#[derive(Debug, Serialize, Deserialize)]
struct ArchivedBinary {
    id: String,
    /// Its path in the archive (`target/...`).
    path: String,
    /// Its package's directory, relative to the workspace root (`""` for the root).
    package_dir: String,
    package_name: String,
    /// Cargo's kind of the target.
    kind: String,
    harness: crate::discover::Kind,
    tests: Vec<CatalogTest>,
    benchmarks: Vec<String>,
}

/// `path` relative to `base`, with `/` between parts, as the archive names files.
fn relative(path: &Path, base: &Path) -> Option<String> {
    let rest = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> =
        rest.components().map(|part| part.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// A file's SHA-256, in hex.
fn sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path)?;
    Ok(sha2::Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_relative_to_a_base_with_slashes() {
        let base = Path::new("/w/target");
        assert_eq!(
            relative(Path::new("/w/target/debug/deps/a-1"), base).unwrap(),
            "debug/deps/a-1"
        );
        assert_eq!(relative(base, base).unwrap(), "");
        assert_eq!(relative(Path::new("/elsewhere/a"), base), None);
    }
}
