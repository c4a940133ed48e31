//! The file helpers every stage uses: writing a file so that a reader never sees half of it,
//! and reading a state file (history, caches, stamps) only when it is a regular file.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never half.
/// The file is the user's alone (0600), as a temp file is.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    // A device or a pipe (`--json /dev/null`, `--junit /dev/stdout`) is written to, never
    // replaced: a file renamed over it would put a regular file where the device was.
    if std::fs::metadata(path).is_ok_and(|meta| !meta.is_file() && !meta.is_dir()) {
        return OpenOptions::new().write(true).open(path)?.write_all(contents);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write = || -> io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(contents)?;
        file.flush()?;
        file.persist(path).map_err(|err| err.error)?;
        Ok(())
    };
    // The error names `path` (the caller says so), not the temp file's random name.
    // (tempfile adds ` at path DIR/.tmpXXXXXX` to its errors.)
    write().map_err(|err| {
        let text = err.to_string();
        let text = text.split(" at path ").next().unwrap_or_default();
        io::Error::new(err.kind(), text)
    })
}

/// A state file that is not one prun reads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("{} is a dangling symlink", .0.display())]
    DanglingSymlink(PathBuf),
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// Reads a state file (history, catalog cache, build stamp): its bytes, or `None` when there is
/// none. Only a regular file is opened: a FIFO, a device or a dangling symlink in its place
/// would hang or fail the read, and is an error to warn about instead.
pub(crate) fn read_state(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    // Opened without blocking (a FIFO would wait for a writer), then checked for what it is.
    let nonblock = nix::fcntl::OFlag::O_NONBLOCK.bits();
    let mut file = match OpenOptions::new().read(true).custom_flags(nonblock).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    Err(StateError::DanglingSymlink(path.to_owned()))
                }
                // Gone, or replaced just now: there is none to read.
                _ => Ok(None),
            };
        }
        Err(source) => return Err(StateError::Read { path: path.to_owned(), source }),
    };
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        return Err(StateError::NotAFile(path.to_owned()));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)
        .map_err(|source| StateError::Read { path: path.to_owned(), source })?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_or_device_is_written_to_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("report.pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_atomically(&fifo, b"{\"report\": 1}").unwrap();
        assert_eq!(reader.join().unwrap(), "{\"report\": 1}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still the pipe");
    }

    #[test]
    fn a_fifo_or_a_dangling_link_is_no_state_file() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("history.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(read_state(&fifo), Err(StateError::NotAFile(_))));
        let dangling = root.path().join("gone");
        std::os::unix::fs::symlink(root.path().join("nothing"), &dangling).unwrap();
        let err = read_state(&dangling).unwrap_err();
        assert!(err.to_string().contains("is a dangling symlink"), "{err}");
        assert_eq!(read_state(&root.path().join("none")).unwrap(), None);
        std::fs::write(root.path().join("file"), "{}").unwrap();
        assert_eq!(read_state(&root.path().join("file")).unwrap(), Some(b"{}".to_vec()));
    }
}
