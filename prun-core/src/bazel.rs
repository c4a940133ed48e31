//! `bazel test`'s contract with a test binary (Bazel's test encyclopedia), which a prun test
//! binary run alone and `cargo prun` both keep, through this module: temp files under the
//! private `TEST_TMPDIR`, and test sharding: with `shard_count` set, Bazel starts the binary
//! once per shard with `TEST_TOTAL_SHARDS` and `TEST_SHARD_INDEX` (from 0), and the binary
//! touches `TEST_SHARD_STATUS_FILE` to say it runs only its shard's tests.

use std::path::PathBuf;

/// One shard of a sharded run: `index` counts from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub total: usize,
}

impl Shard {
    /// Whether the test at `position` (in name order) is this shard's: round robin, so every
    /// shard has a share of every part of the suite.
    pub fn has(&self, position: usize) -> bool {
        position % self.total == self.index
    }
}

/// Where temp files go: Bazel's `TEST_TMPDIR` under `bazel test`, else the system's.
pub fn temp_dir() -> PathBuf {
    match std::env::var_os("TEST_TMPDIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir(),
    }
}

/// Bazel's sharding variables, when they cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{name}={text:?} is not a whole number")]
    NotANumber { name: &'static str, text: String },
    #[error("TEST_TOTAL_SHARDS is set but TEST_SHARD_INDEX is not")]
    NoIndex,
    #[error("TEST_SHARD_INDEX={index} is not a shard of TEST_TOTAL_SHARDS={total} (0 to {})", total.saturating_sub(1))]
    OutOfRange { index: usize, total: usize },
    #[error("cannot touch TEST_SHARD_STATUS_FILE {}: {source}", path.display())]
    StatusFile { path: PathBuf, source: std::io::Error },
}

/// This run's shard under `bazel test` with `shard_count`, after saying so to Bazel (touching
/// `TEST_SHARD_STATUS_FILE`); `None` when Bazel does not shard.
pub fn shard() -> Result<Option<Shard>, ShardError> {
    let shard = shard_of(&|name| std::env::var(name).ok())?;
    if shard.is_some()
        && let Some(status) = std::env::var_os("TEST_SHARD_STATUS_FILE")
    {
        std::fs::write(&status, "")
            .map_err(|source| ShardError::StatusFile { path: status.into(), source })?;
    }
    Ok(shard)
}

fn shard_of(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
    let Some(total) = env("TEST_TOTAL_SHARDS") else { return Ok(None) };
    let number = |name: &'static str, text: &str| {
        text.trim()
            .parse::<usize>()
            .map_err(|_| ShardError::NotANumber { name, text: text.to_owned() })
    };
    let total = number("TEST_TOTAL_SHARDS", &total)?;
    let index = match env("TEST_SHARD_INDEX") {
        Some(index) => number("TEST_SHARD_INDEX", &index)?,
        None => return Err(ShardError::NoIndex),
    };
    if total == 0 || index >= total {
        return Err(ShardError::OutOfRange { index, total });
    }
    // One shard is the whole run.
    Ok((total > 1).then_some(Shard { index, total }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn reads_bazels_shard_and_refuses_a_bad_one_by_name() {
        assert_eq!(shard_of(&env(&[])).unwrap(), None);
        let vars = [("TEST_TOTAL_SHARDS", "3"), ("TEST_SHARD_INDEX", "2")];
        assert_eq!(shard_of(&env(&vars)).unwrap(), Some(Shard { index: 2, total: 3 }));
        let one = [("TEST_TOTAL_SHARDS", "1"), ("TEST_SHARD_INDEX", "0")];
        assert_eq!(shard_of(&env(&one)).unwrap(), None);
        let past = [("TEST_TOTAL_SHARDS", "3"), ("TEST_SHARD_INDEX", "3")];
        assert!(shard_of(&env(&past)).unwrap_err().to_string().contains("TEST_SHARD_INDEX=3"));
        let word = [("TEST_TOTAL_SHARDS", "x"), ("TEST_SHARD_INDEX", "0")];
        assert!(shard_of(&env(&word)).unwrap_err().to_string().contains("TEST_TOTAL_SHARDS"));
    }

    #[test]
    fn every_position_is_in_exactly_one_shard() {
        for total in 1..6 {
            for position in 0..20 {
                let owners = (0..total).filter(|&index| Shard { index, total }.has(position));
                assert_eq!(owners.count(), 1);
            }
        }
    }
}
