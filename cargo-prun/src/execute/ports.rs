//! Loopback ports for a run's tests. Each run holds a band of port blocks (a block of 100 ports
//! per worker slot) under an exclusive file lock for as long as it runs, so two runs at once on
//! one machine never hand out the same port; within a block, `prun::Port` checks each port free.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const FIRST_PORT: u16 = 20_000;
const BLOCK: u16 = 100;
/// Blocks per band: slots beyond it share its blocks (and each port is still checked free).
const BLOCKS_PER_BAND: u16 = 16;
/// 20,000 + 25 bands x 16 blocks x 100 ports = 60,000: below the kernel's ephemeral range.
const BANDS: u16 = 25;

#[derive(Debug)]
pub(crate) struct PortBand {
    index: u16,
    /// Held while the run lasts; `None` when no band could be locked (each port is then still
    /// checked free, as before).
    _lock: Option<File>,
}

impl PortBand {
    /// The first band no other run holds, trying from the one `run_id` hashes to.
    pub(crate) fn reserve(run_id: &str) -> PortBand {
        PortBand::reserve_in(run_id, &lock_dir())
    }

    fn reserve_in(run_id: &str, dir: &Path) -> PortBand {
        let first = run_id.bytes().fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let first = first % BANDS;
        if std::fs::create_dir_all(dir).is_ok() {
            for offset in 0..BANDS {
                let index = (first + offset) % BANDS;
                let Ok(file) = File::create(dir.join(format!("band-{index}.lock"))) else { break };
                if file.try_lock().is_ok() {
                    return PortBand { index, _lock: Some(file) };
                }
            }
        }
        PortBand { index: first, _lock: None }
    }

    /// The ports of `slot`'s block: first and last.
    pub(crate) fn range(&self, slot: usize) -> (u16, u16) {
        let block = u16::try_from(slot).unwrap_or(u16::MAX) % BLOCKS_PER_BAND;
        let start = FIRST_PORT + (self.index * BLOCKS_PER_BAND + block) * BLOCK;
        (start, start + BLOCK - 1)
    }
}

/// One directory per user, whatever `TMPDIR` each run has: `/tmp/prun-ports-UID`.
fn lock_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    PathBuf::from("/tmp").join(format!("prun-ports-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_once_hold_different_bands() {
        let dir = tempfile::tempdir().unwrap();
        let first = PortBand::reserve_in("same-run-id", dir.path());
        let second = PortBand::reserve_in("same-run-id", dir.path());
        assert_ne!(first.index, second.index);
        assert_ne!(first.range(0), second.range(0));
        let (start, end) = first.range(3);
        assert!(start >= FIRST_PORT && end < FIRST_PORT + BANDS * BLOCKS_PER_BAND * BLOCK);
        // A finished run's band is free again.
        let index = first.index;
        drop(first);
        assert_eq!(PortBand::reserve_in("same-run-id", dir.path()).index, index);
    }

    #[test]
    fn slots_of_a_band_have_blocks_of_their_own() {
        let band = PortBand { index: 2, _lock: None };
        assert_eq!(band.range(0), (23_200, 23_299));
        assert_eq!(band.range(1), (23_300, 23_399));
        assert_eq!(band.range(16), band.range(0));
    }
}
