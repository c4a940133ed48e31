//! `cargo prun --archive-file FILE`: the test binaries of an archive, unpacked, checked against
//! this machine and the sources beside them, ready to run without cargo.

use std::path::{Path, PathBuf};

use super::{Error, FORMAT, MANIFEST, Manifest, sha256};
use crate::build::{self, TestBinary};
use crate::cli::BuildArgs;
use crate::discover::Binary;

/// Problems listed in an error are cut to this many.
const SHOWN: usize = 10;

/// An archive unpacked for one run: its binaries point into a temporary directory that is
/// removed when this is dropped.
pub(crate) struct Unpacked {
    /// Where the tests run from: the sources' checkout.
    pub(crate) root: PathBuf,
    pub(crate) binaries: Vec<Binary>,
    pub(crate) dylib_path: std::ffi::OsString,
    /// The target the binaries were built for.
    pub(crate) target: String,
    pub(crate) dir: tempfile::TempDir,
}

/// `--archive-file FILE`: the archive unpacked and checked, its binaries under the target's
/// runner when cargo's config names one. Build flags have no meaning here and are refused.
pub(crate) fn open(build_args: &BuildArgs, file: &Path, cwd: &Path) -> Result<Unpacked, Error> {
    let flags = build_flags(build_args);
    if !flags.is_empty() {
        return Err(Error::BuildFlags(flags));
    }
    if build_args.doc {
        return Err(Error::Doctests);
    }
    let mut unpacked = unpack(file, build_args.workspace_remap.as_deref(), cwd)?;
    let runner = build::runner::resolve(Some(&unpacked.target), &build_args.cargo_config, cwd)?;
    match &runner {
        Some(runner) => {
            eprintln!(
                "note: running the test binaries under {} (set by {})",
                runner.program.display(),
                runner.source
            );
            for binary in &mut unpacked.binaries {
                binary.binary.runner = Some(runner.clone());
            }
        }
        None if !runs_here(&unpacked.target) => {
            return Err(Error::OtherTarget {
                path: file.to_owned(),
                target: unpacked.target,
                here: format!("{} {}", std::env::consts::ARCH, std::env::consts::OS),
            });
        }
        None => {}
    }
    Ok(unpacked)
}

/// The cargo flags given that choose or change a build (what an archive cannot honour).
fn build_flags(build_args: &BuildArgs) -> Vec<String> {
    let mut given: Vec<String> = Vec::new();
    let mut args = build_args.to_cargo_args().into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "--target-dir" => {
                args.next();
            }
            "--quiet" | "--verbose" | "--locked" | "--frozen" | "--offline" => {}
            flag if flag.starts_with('-') && !given.iter().any(|g| g == flag) => {
                given.push(flag.to_owned());
            }
            _ => {}
        }
    }
    given
}

/// Unpacks `file` and checks that its binaries can run here, with the sources at `remap` (else
/// where they were built).
fn unpack(file: &Path, remap: Option<&Path>, cwd: &Path) -> Result<Unpacked, Error> {
    let dir =
        tempfile::Builder::new().prefix("prun-archive-").tempdir().map_err(Error::UnpackDir)?;
    let opened = std::fs::File::open(file)
        .map_err(|source| Error::Open { path: file.to_owned(), source })?;
    let not_an_archive =
        |source: std::io::Error| Error::NotAnArchive { path: file.to_owned(), source };
    let decoder = zstd::stream::read::Decoder::new(opened).map_err(not_an_archive)?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_mtime(true);
    tar.unpack(dir.path()).map_err(not_an_archive)?;
    let manifest = std::fs::read(dir.path().join(MANIFEST)).map_err(not_an_archive)?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|err| not_an_archive(std::io::Error::other(err)))?;
    let ours = env!("CARGO_PKG_VERSION");
    if manifest.format != FORMAT || manifest.prun_version != ours {
        return Err(Error::OtherVersion {
            path: file.to_owned(),
            made_by: manifest.prun_version,
            format: manifest.format,
            ours,
        });
    }
    let root = match remap {
        Some(remap) => cwd.join(remap),
        None => manifest.workspace_root.clone(),
    };
    if !root.join("Cargo.toml").is_file() {
        return Err(match remap {
            Some(_) => Error::NoManifest(root),
            None => Error::NoWorkspace { built_in: root },
        });
    }
    if let Some(sources) = &manifest.sources {
        check_sources(sources, &root, file)?;
    }
    let binaries = binaries(&manifest, dir.path(), &root);
    let tests: Vec<TestBinary> = binaries.iter().map(|b| b.binary.clone()).collect();
    let dylib_path = build::dylib_path(vec![dir.path().join("lib")], &tests);
    Ok(Unpacked { root, binaries, dylib_path, target: manifest.target, dir })
}

/// Whether binaries built for `triple` run on this machine without a runner.
fn runs_here(triple: &str) -> bool {
    let arch = triple.split('-').next().unwrap_or_default();
    let arch = match arch {
        "i386" | "i586" | "i686" => "x86",
        arm if arm.starts_with("armv") || arm.starts_with("thumbv") => "arm",
        other => other,
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    arch == std::env::consts::ARCH && triple.contains(os)
}

/// Every source file the archive was built from must be as it was.
fn check_sources(
    sources: &std::collections::BTreeMap<String, String>,
    root: &Path,
    file: &Path,
) -> Result<(), Error> {
    let mut changed = Vec::new();
    for (name, hash) in sources {
        match sha256(&root.join(name)) {
            Ok(now) if &now == hash => {}
            Ok(_) => changed.push(format!("  changed: {name}")),
            Err(_) => changed.push(format!("  missing: {name}")),
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let count = changed.len();
    changed.truncate(SHOWN);
    if count > SHOWN {
        changed.push(format!("  and {} more", count - SHOWN));
    }
    Err(Error::OtherSources {
        path: file.to_owned(),
        root: root.to_owned(),
        count,
        listed: changed.join("\n"),
    })
}

/// The archive's test binaries, at their unpacked paths, with their packages in `root`.
fn binaries(manifest: &Manifest, dir: &Path, root: &Path) -> Vec<Binary> {
    let at = |name: &str| dir.join(name);
    let programs: Vec<(String, String)> = manifest
        .programs
        .iter()
        .map(|(name, path)| (format!("CARGO_BIN_EXE_{name}"), at(path).display().to_string()))
        .collect();
    manifest
        .binaries
        .iter()
        .map(|archived| {
            let mut env = programs.clone();
            if let Some(out_dir) = manifest.out_dirs.get(&archived.package_name) {
                env.push(("OUT_DIR".to_owned(), at(out_dir).display().to_string()));
            }
            let package_dir = match archived.package_dir.as_str() {
                "" => root.to_owned(),
                dir => root.join(dir),
            };
            Binary {
                binary: TestBinary {
                    id: archived.id.clone(),
                    path: at(&archived.path),
                    package_dir,
                    package_name: archived.package_name.clone(),
                    kind: archived.kind.clone(),
                    runner: None,
                    env,
                },
                kind: archived.harness,
                tests: archived.tests.clone(),
                benchmarks: archived.benchmarks.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triple_of_this_machine_runs_here_and_another_does_not() {
        let here = format!("{}-unknown-{}-gnu", std::env::consts::ARCH, std::env::consts::OS);
        assert!(runs_here(&here), "{here}");
        assert!(!runs_here("riscv64gc-unknown-none-elf"));
        assert!(!runs_here(&format!("{}-pc-windows-msvc-x", "s390x")));
    }

    #[test]
    fn changed_and_missing_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "fn a() {}").unwrap();
        std::fs::write(dir.path().join("b.rs"), "fn b() {}").unwrap();
        let mut sources = std::collections::BTreeMap::new();
        sources.insert("a.rs".to_owned(), sha256(&dir.path().join("a.rs")).unwrap());
        sources.insert("b.rs".to_owned(), "0".repeat(64));
        sources.insert("c.rs".to_owned(), "0".repeat(64));
        let err = check_sources(&sources, dir.path(), Path::new("t.tar.zst")).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("2 of the files"), "{err}");
        assert!(err.contains("changed: b.rs") && err.contains("missing: c.rs"), "{err}");
        assert!(!err.contains("a.rs"), "{err}");
        sources.remove("b.rs");
        sources.remove("c.rs");
        assert!(check_sources(&sources, dir.path(), Path::new("t.tar.zst")).is_ok());
    }
}
