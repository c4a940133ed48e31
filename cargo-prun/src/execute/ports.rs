//! Loopback ports for a run's tests. Each run holds a band of port blocks (a block of 100 ports
//! per worker slot) under an exclusive file lock for as long as it runs, so two runs at once on
//! one machine never hand out the same port; within a block, `prun::Port` checks each port free.

use std::fs::File;
use std::path::Path;

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
        match crate::private::user_dir() {
            Ok(dir) => PortBand::reserve_in(run_id, &dir),
            Err(err) => {
                eprintln!("warning: no port band for this run ({err}); each port is still checked");
                PortBand { index: first_band(run_id), _lock: None }
            }
        }
    }

    fn reserve_in(run_id: &str, dir: &Path) -> PortBand {
        let first = first_band(run_id);
        if dir.is_dir() {
            for offset in 0..BANDS {
                let index = (first + offset) % BANDS;
                let path = dir.join(format!("ports-band-{index}.lock"));
                let Ok(file) = crate::private::open(&path) else { continue };
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

/// The band a run tries first: from its id, so runs at once start apart.
fn first_band(run_id: &str) -> u16 {
    run_id.bytes().fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into())) % BANDS
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
