//! `--partition`: which share of the tests this machine runs, so that N CI jobs split a suite.
//! Every test lands in exactly one of the N shards, the same one on every machine given the same
//! tests.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partition {
    /// `count:K/N`: the K-th of every N tests, in the run's test order.
    Count { shard: u64, of: u64 },
    /// `hash:K/N`: the tests whose id hashes to K: stable as tests come and go.
    Hash { shard: u64, of: u64 },
}

impl Partition {
    /// Whether the test at `index` (among the selected tests) with id `BINARY NAME` is ours.
    pub(crate) fn contains(self, index: usize, id: &str) -> bool {
        match self {
            Partition::Count { shard, of } => (index as u64) % of == shard - 1,
            Partition::Hash { shard, of } => fnv1a(id.as_bytes()) % of == shard - 1,
        }
    }
}

/// FNV-1a: small, and the same on every machine and Rust version (std's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Partition, String> {
        let usage = || format!("expected count:K/N or hash:K/N with 1 <= K <= N, got {text:?}");
        let (kind, shards) = text.split_once(':').ok_or_else(usage)?;
        let (shard, of) = shards.split_once('/').ok_or_else(usage)?;
        let (shard, of): (u64, u64) =
            (shard.parse().map_err(|_| usage())?, of.parse().map_err(|_| usage())?);
        if shard == 0 || of == 0 || shard > of {
            return Err(usage());
        }
        match kind {
            "count" => Ok(Partition::Count { shard, of }),
            "hash" => Ok(Partition::Hash { shard, of }),
            "timing" => Err("timing:K/N needs the history of earlier runs, which prun does not keep yet: use count or hash".to_owned()),
            _ => Err(usage()),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Count { shard, of } => write!(f, "count:{shard}/{of}"),
            Partition::Hash { shard, of } => write!(f, "hash:{shard}/{of}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_lands_in_exactly_one_shard() {
        let ids: Vec<String> = (0..200).map(|i| format!("crate::bin test_{i}")).collect();
        for kind in ["count", "hash"] {
            let shards: Vec<Partition> =
                (1..=4).map(|k| format!("{kind}:{k}/4").parse().unwrap()).collect();
            for (index, id) in ids.iter().enumerate() {
                let homes = shards.iter().filter(|p| p.contains(index, id)).count();
                assert_eq!(homes, 1, "{kind}: {id}");
            }
        }
    }

    #[test]
    fn hash_shards_do_not_depend_on_order() {
        let p: Partition = "hash:2/3".parse().unwrap();
        assert_eq!(p.contains(0, "a b"), p.contains(99, "a b"));
        // FNV-1a's published test vectors: the shards of a suite never move between machines.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_partitions_say_what_is_expected() {
        for bad in ["count:0/3", "count:4/3", "hash:1", "slice:1/2", "count:a/b"] {
            assert!(bad.parse::<Partition>().unwrap_err().contains("count:K/N"), "{bad}");
        }
        assert!("timing:1/2".parse::<Partition>().unwrap_err().contains("history"));
    }
}
