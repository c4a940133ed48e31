//! The run's private directory (0700, whatever the umask): worker sockets, and `tmp/` for the
//! tests' temp dirs. It holds an `owner` file with the process id of the `cargo prun` that made
//! it; a run that is killed (`kill -9`) cannot remove its directory, so each run removes those
//! whose owner is gone. A directory kept on purpose (failed tests' temp dirs) has no owner file.

use std::path::Path;

const PREFIX: &str = "prun-run-";
const OWNER: &str = "owner";

/// The run's directory could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot create the run directory: {0}")]
    Create(std::io::Error),
    #[error("cannot create {path}: {source}")]
    Part { path: std::path::PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub(crate) struct RunDir {
    dir: tempfile::TempDir,
    /// The run's id: `PRUN_RUN_ID`, and part of every worker namespace.
    pub(crate) id: String,
}

impl RunDir {
    pub(crate) fn new() -> Result<RunDir, Error> {
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(prun::bazel::temp_dir())
            .map_err(Error::Create)?;
        let part = |path: std::path::PathBuf| move |source| Error::Part { path, source };
        let tmp = dir.path().join("tmp");
        crate::private::dir(&tmp).map_err(part(tmp.clone()))?;
        let owner = dir.path().join(OWNER);
        std::fs::write(&owner, std::process::id().to_string()).map_err(part(owner.clone()))?;
        if let Some(parent) = dir.path().parent() {
            remove_abandoned(parent, dir.path());
        }
        // `PRUN_RUN_ID` names the run when a script sets it; else the directory's random name.
        let given = prun::protocol::given_run_id();
        let name = dir.path().file_name().and_then(|n| n.to_str()).unwrap_or("run");
        let id = given.unwrap_or_else(|| {
            name.trim_start_matches(PREFIX)
                .to_ascii_lowercase()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect()
        });
        Ok(RunDir { dir, id })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory when failed tests left their temp dirs in it.
    pub(crate) fn keep_if_used(self) {
        let tmp = self.dir.path().join("tmp");
        if std::fs::read_dir(&tmp).is_ok_and(|mut entries| entries.next().is_some()) {
            // Kept on purpose: no later run may take it for abandoned.
            let _ = std::fs::remove_file(self.dir.path().join(OWNER));
            let kept = self.dir.keep();
            eprintln!("note: temp dirs of failed tests are kept in {}", kept.join("tmp").display());
        }
    }
}

/// Removes the run directories in `temp` of runs that were killed: this user's, with an owner
/// file whose process is gone.
fn remove_abandoned(temp: &Path, ours: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry.file_name().to_str().is_some_and(|name| name.starts_with(PREFIX));
        let mine = std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| meta.is_dir() && std::os::unix::fs::MetadataExt::uid(&meta) == uid);
        if !named || !mine || path == ours {
            continue;
        }
        let owner = std::fs::read_to_string(path.join(OWNER)).ok();
        if let Some(pid) = owner.and_then(|pid| pid.trim().parse::<u32>().ok())
            && !crate::os::alive(pid)
        {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_runs_that_are_gone_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<&str>| {
            let dir = temp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER), owner).unwrap();
            }
            dir
        };
        let alive = make("prun-run-alive", Some(&std::process::id().to_string()));
        let gone = make("prun-run-gone", Some("999999999"));
        let kept = make("prun-run-kept", None);
        let other = make("not-prun", Some("999999999"));
        remove_abandoned(temp.path(), Path::new("/none"));
        assert!(alive.exists() && kept.exists() && other.exists());
        assert!(!gone.exists());
    }
}
