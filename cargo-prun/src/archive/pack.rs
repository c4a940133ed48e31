//! `cargo prun archive --archive-file FILE`: build the tests once and write what a run needs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ArchivedBinary, Error, FORMAT, MANIFEST, Manifest, relative, sha256};
use crate::build::{self, Built};
use crate::cli::BuildArgs;
use crate::discover::{self, Binary};

/// zstd's level: its default, a good trade of time for size on binaries.
const LEVEL: i32 = 3;

/// Builds as `cargo prun` would and writes the archive; Ok carries the exit code (cargo's, when
/// its build failed).
pub(crate) fn archive(args: &BuildArgs) -> Result<i32, Error> {
    let Some(file) = &args.archive_file else { return Err(Error::NoFile) };
    if args.workspace_remap.is_some() {
        return Err(Error::RemapWhileMaking);
    }
    if args.doc {
        return Err(Error::Doctests);
    }
    let cwd = std::env::current_dir().map_err(Error::CurrentDir)?;
    let mut metadata = cargo_metadata::MetadataCommand::new();
    metadata.no_deps();
    if let Some(path) = &args.manifest_path {
        metadata.manifest_path(path);
    }
    let metadata = metadata.exec()?;
    let workspace_root = metadata.workspace_root.into_std_path_buf();
    let target = build::runner::target_triple(args.target.as_deref(), &args.cargo_config, &cwd)?;
    let toolchain = std::thread::spawn(build::toolchain_dirs);
    let built = match build::build(&args.to_cargo_args()) {
        Ok(built) => built,
        Err(code) => return Ok(code),
    };
    // Where cargo built (`--target-dir`, else the workspace's, which `CARGO_TARGET_DIR` and
    // cargo's config set): the archive keeps paths relative to it.
    let target_dir = match &args.target_dir {
        Some(dir) => cwd.join(dir),
        None => metadata.target_directory.into_std_path_buf(),
    };
    let toolchain = toolchain.join().unwrap_or_default();
    let dylib_path = build::dylib_path(toolchain.clone(), &built.binaries);
    let history = crate::prepare::history_store(
        args.manifest_path.as_deref(),
        args.target_dir.as_deref(),
        Some(target_dir.clone()),
    )?;
    let mut catalogs = discover::CatalogCache::load(history.dir());
    let binaries = discover::discover_all(built.binaries.clone(), &dylib_path, &mut catalogs)?;
    catalogs.save();

    let contents = Contents::of(&built, &binaries, &target_dir, &workspace_root, &toolchain)?;
    let sources = sources(&built, &workspace_root, &target_dir);
    if sources.is_none() {
        eprintln!(
            "warning: cargo did not say which sources the build read: a run from this archive \
             cannot tell whether its sources changed"
        );
    }
    let manifest = Manifest {
        format: FORMAT,
        prun_version: env!("CARGO_PKG_VERSION").to_owned(),
        target,
        workspace_root,
        binaries: contents.binaries,
        programs: contents.programs,
        out_dirs: contents.out_dirs,
        libraries: contents.libraries.iter().map(|(name, _)| name.clone()).collect(),
        sources,
    };
    let size = write(file, &manifest, &contents.files, &contents.libraries)?;
    let tests: usize = manifest.binaries.iter().map(|b| b.tests.len()).sum();
    eprintln!(
        "     Archive {} test binaries ({tests} tests), {} programs, {} build script outputs and \
         {} shared libraries to {} ({:.1} MiB)",
        manifest.binaries.len(),
        manifest.programs.len(),
        manifest.out_dirs.len(),
        manifest.libraries.len(),
        file.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(crate::exit::OK)
}

/// What goes in the archive besides the manifest.
struct Contents {
    binaries: Vec<ArchivedBinary>,
    programs: BTreeMap<String, String>,
    out_dirs: BTreeMap<String, String>,
    /// Files and directories of the target directory: path in the archive → path here.
    files: BTreeMap<String, PathBuf>,
    /// Shared libraries: file name → path here.
    libraries: Vec<(String, PathBuf)>,
}

impl Contents {
    fn of(
        built: &Built,
        binaries: &[Binary],
        target_dir: &Path,
        workspace_root: &Path,
        toolchain: &[PathBuf],
    ) -> Result<Contents, Error> {
        let mut files = BTreeMap::new();
        let mut in_target = |path: &Path| -> Result<String, Error> {
            let name = relative(path, target_dir).map(|rest| format!("target/{rest}")).ok_or_else(
                || Error::OutsideTarget {
                    path: path.to_owned(),
                    target_dir: target_dir.to_owned(),
                },
            )?;
            files.insert(name.clone(), path.to_owned());
            Ok(name)
        };
        let mut archived = Vec::new();
        for binary in binaries {
            let test = &binary.binary;
            let package_dir = relative(&test.package_dir, workspace_root).ok_or_else(|| {
                Error::OutsideWorkspace {
                    package: test.package_name.clone(),
                    dir: test.package_dir.clone(),
                    root: workspace_root.to_owned(),
                }
            })?;
            archived.push(ArchivedBinary {
                id: test.id.clone(),
                path: in_target(&test.path)?,
                package_dir,
                package_name: test.package_name.clone(),
                kind: test.kind.clone(),
                harness: binary.kind,
                tests: binary.tests.clone(),
                benchmarks: binary.benchmarks.clone(),
            });
        }
        let mut programs = BTreeMap::new();
        for (name, path) in &built.programs {
            programs.insert(name.clone(), in_target(path)?);
        }
        // The build scripts' outputs the archived tests see (the `OUT_DIR` the build gave them).
        let mut out_dirs = BTreeMap::new();
        for binary in binaries {
            let out_dir = binary.binary.env.iter().find(|(name, _)| name == "OUT_DIR");
            if let Some((_, dir)) = out_dir
                && !out_dirs.contains_key(&binary.binary.package_name)
                && Path::new(dir).is_dir()
            {
                out_dirs.insert(binary.binary.package_name.clone(), in_target(Path::new(dir))?);
            }
        }
        let executables: Vec<&Path> = binaries
            .iter()
            .map(|b| b.binary.path.as_path())
            .chain(built.programs.iter().map(|(_, path)| path.as_path()))
            .collect();
        let libraries = libraries(&executables, toolchain)?;
        Ok(Contents { binaries: archived, programs, out_dirs, files, libraries })
    }
}

/// The shared libraries the executables load (and those load) that the build or the
/// toolchain made, found where a test run looks for them: beside each executable, in its
/// profile directory, and the toolchain's library directories. The system's (libc) are not
/// found there, and stay the system's.
fn libraries(
    executables: &[&Path],
    toolchain: &[PathBuf],
) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut search: Vec<PathBuf> = Vec::new();
    for executable in executables {
        if let Some(dir) = executable.parent() {
            search.push(dir.to_owned());
            search.extend(dir.parent().map(Path::to_owned));
        }
    }
    search.extend(toolchain.iter().cloned());
    search.dedup();
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut pending: Vec<PathBuf> = executables.iter().map(|path| path.to_path_buf()).collect();
    while let Some(path) = pending.pop() {
        let bytes =
            std::fs::read(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        // Not an ELF file (another platform's format): nothing to follow.
        let Ok(elf) = goblin::elf::Elf::parse(&bytes) else { continue };
        for needed in elf.libraries {
            if found.contains_key(needed) {
                continue;
            }
            if let Some(library) = search.iter().map(|dir| dir.join(needed)).find(|p| p.is_file()) {
                found.insert(needed.to_owned(), library.clone());
                pending.push(library);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Each file rustc read inside the workspace (not under the target directory), and its hash.
fn sources(
    built: &Built,
    workspace_root: &Path,
    target_dir: &Path,
) -> Option<BTreeMap<String, String>> {
    let compiled = build::fresh::compiled(&built.reads)?;
    let mut sources = BTreeMap::new();
    for path in compiled.iter().filter(|path| !path.starts_with(target_dir)) {
        let Some(name) = relative(path, workspace_root) else { continue };
        sources.insert(name, sha256(path).ok()?);
    }
    Some(sources)
}

/// Writes the archive atomically (a temporary file beside it, renamed); returns its size.
fn write(
    file: &Path,
    manifest: &Manifest,
    files: &BTreeMap<String, PathBuf>,
    libraries: &[(String, PathBuf)],
) -> Result<u64, Error> {
    let failed = |source: std::io::Error| Error::Write { path: file.to_owned(), source };
    // Renamed over a device or a pipe, the archive would replace it.
    if std::fs::metadata(file).is_ok_and(|meta| !meta.is_file()) {
        return Err(failed(std::io::Error::other("not a regular file")));
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temporary = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    let encoder = zstd::stream::write::Encoder::new(temporary, LEVEL).map_err(failed)?;
    let mut tar = tar::Builder::new(encoder);
    let json = serde_json::to_vec_pretty(manifest).map_err(|err| failed(err.into()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    header.set_mtime(now.map_or(0, |since| since.as_secs()));
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, json.as_slice()).map_err(failed)?;
    for (name, path) in files {
        if path.is_dir() {
            tar.append_dir_all(name, path).map_err(failed)?;
        } else {
            tar.append_path_with_name(path, name).map_err(failed)?;
        }
    }
    for (name, path) in libraries {
        tar.append_path_with_name(path, format!("lib/{name}")).map_err(failed)?;
    }
    let mut temporary = tar.into_inner().map_err(failed)?.finish().map_err(failed)?;
    temporary.flush().map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    let size = temporary.as_file().metadata().map_err(failed)?.len();
    temporary.persist(file).map_err(|err| failed(err.error))?;
    Ok(size)
}
