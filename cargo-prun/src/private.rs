//! Files prun makes outside the target dir: in a directory it made itself, mode 0700, whose
//! owner and mode are checked before use, opened without following symlinks. A directory someone
//! else planted at the expected path, or a symlink in it, is refused, never written through.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `dir`, created 0700 if missing; an existing one must be a real directory (not a symlink),
/// owned by this user, and readable by no one else.
pub(crate) fn dir(dir: &Path) -> io::Result<PathBuf> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}: prun will not use it", dir.display()),
        ))
    };
    if !meta.file_type().is_dir() {
        return refuse("is not a directory (a symlink?)");
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return refuse("belongs to another user");
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return refuse("is open to other users (its mode is not 0700)");
    }
    Ok(dir.to_owned())
}

/// Opens (creating it 0600) a file in a [`dir`] for writing, without following a symlink
/// and without truncating: a planted link fails to open.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    let nofollow = nix::fcntl::OFlag::O_NOFOLLOW.bits();
    OpenOptions::new().write(true).create(true).mode(0o600).custom_flags(nofollow).open(path)
}

/// The user's own directory for prun's machine-wide files: `$XDG_RUNTIME_DIR/prun` when the
/// session has one, else `/tmp/prun-UID`; checked as [`dir`].
pub(crate) fn user_dir() -> io::Result<PathBuf> {
    let runtime =
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_absolute());
    match runtime {
        Some(runtime) if runtime.is_dir() => dir(&runtime.join("prun")),
        _ => dir(&PathBuf::from("/tmp").join(format!("prun-{}", nix::unistd::geteuid()))),
    }
}

/// Opens (creating it) a lock file beside state files, without blocking on a FIFO planted in
/// its place and without following a symlink.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    let flags = (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOFOLLOW).bits();
    let file =
        OpenOptions::new().write(true).create(true).mode(0o600).custom_flags(flags).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("{} is not a regular file", path.display())));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_not_written_through() {
        let root = tempfile::tempdir().unwrap();
        let private = dir(&root.path().join("p")).unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, private.join("band-0.lock")).unwrap();
        assert!(open(&private.join("band-0.lock")).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let meta = std::fs::metadata(&private).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_directory_open_to_others_or_a_link_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let open_dir = root.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(dir(&open_dir).unwrap_err().to_string().contains("not 0700"));
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        assert!(dir(&link).unwrap_err().to_string().contains("symlink"));
    }

    #[test]
    fn a_fifo_is_no_lock_file() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("band.lock");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open_lock(&fifo).is_err(), "a FIFO as a lock file fails at once");
    }
}
