//! `--partition`: which share of the tests this machine runs, so that N CI jobs split a suite.
//! Every test lands in exactly one of the N shards, the same one on every machine given the same
//! tests (and, for `timing`, the same timings).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partition {
    /// `count:K/N`: the K-th of every N tests, in the run's test order.
    Count { shard: u64, of: u64 },
    /// `hash:K/N`: the tests whose id hashes to K: stable as tests come and go.
    Hash { shard: u64, of: u64 },
    /// `timing:K/N`: shards of about equal expected time, by recorded durations.
    Timing { shard: u64, of: u64 },
}

impl Partition {
    /// Which of the selected tests (id `BINARY NAME` and expected duration, in the run's test
    /// order) are ours.
    pub(crate) fn select(self, tests: &[(String, Duration)]) -> Vec<bool> {
        match self {
            Partition::Count { shard, of } => {
                (0..tests.len()).map(|index| (index as u64) % of == shard - 1).collect()
            }
            Partition::Hash { shard, of } => {
                tests.iter().map(|(id, _)| fnv1a(id.as_bytes()) % of == shard - 1).collect()
            }
            Partition::Timing { shard, of } => {
                timing_shards(tests, of).into_iter().map(|s| s == shard - 1).collect()
            }
        }
    }
}

impl Partition {
    /// How many shards the partition has.
    pub(crate) fn of(self) -> u64 {
        let (Partition::Count { of, .. }
        | Partition::Hash { of, .. }
        | Partition::Timing { of, .. }) = self;
        of
    }

    /// The same partition's shard `shard`.
    pub(crate) fn with_shard(self, shard: u64) -> Partition {
        match self {
            Partition::Count { of, .. } => Partition::Count { shard, of },
            Partition::Hash { of, .. } => Partition::Hash { shard, of },
            Partition::Timing { of, .. } => Partition::Timing { shard, of },
        }
    }

    /// Whether this shard reports the test `id`, which no shard runs (an ignored test): by its
    /// id's hash whatever the partition, so that exactly one shard reports it.
    pub(crate) fn reports(self, id: &str) -> bool {
        let (Partition::Count { shard, of }
        | Partition::Hash { shard, of }
        | Partition::Timing { shard, of }) = self;
        fnv1a(id.as_bytes()) % of == shard - 1
    }
}

/// Longest expected first, each to the shard with the least time so far (ties to the lower
/// shard, equal durations by id): the same shards on every machine with the same timings.
fn timing_shards(tests: &[(String, Duration)], of: u64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..tests.len()).collect();
    order.sort_by(|&a, &b| tests[b].1.cmp(&tests[a].1).then_with(|| tests[a].0.cmp(&tests[b].0)));
    let mut load = vec![Duration::ZERO; usize::try_from(of).unwrap_or(usize::MAX).max(1)];
    let mut shards = vec![0; tests.len()];
    for index in order {
        let lightest = (0..load.len()).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[lightest] += tests[index].1;
        shards[index] = lightest as u64;
    }
    shards
}

/// FNV-1a: small, and the same on every machine and Rust version (std's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What is wrong with a `--partition` or with the CI's shard variables.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "expected count:K/N, hash:K/N or timing:K/N with 1 <= K <= N (or K/N = auto), got {0:?}"
    )]
    Usage(String),
    #[error("{text}: {why}")]
    Auto { text: String, why: Box<Error> },
    #[error("{name}={text:?} is not a whole number")]
    NotANumber { name: &'static str, text: String },
    #[error("PRUN_SHARD={0:?}: expected K/N with 1 <= K <= N")]
    PrunShard(String),
    #[error("{ci}: {index}={index_value} is not a shard of {total}={of}")]
    NotAShard {
        ci: &'static str,
        index: &'static str,
        index_value: u64,
        total: &'static str,
        of: u64,
    },
    #[error(
        "no CI shard variables found: GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, CircleCI's \
         CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL, Buildkite's BUILDKITE_PARALLEL_JOB/_COUNT, Bazel's \
         TEST_SHARD_INDEX/TEST_TOTAL_SHARDS, a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with \
         PRUN_SHARD_TOTAL, or PRUN_SHARD=K/N; or give K/N"
    )]
    NoCi,
}

/// Which CI told the shard: its name and the variables read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CiShard {
    pub(crate) shard: u64,
    pub(crate) of: u64,
    pub(crate) ci: &'static str,
    pub(crate) variables: &'static str,
}

/// This job's shard, K of N (1-based), from the variables of the CI it runs in: GitLab
/// (`parallel:`), CircleCI, Buildkite, Bazel's test sharding, a Kubernetes Indexed Job (whose
/// total the job passes as `PRUN_SHARD_TOTAL`), or `PRUN_SHARD=K/N`.
pub(crate) fn ci_shard(env: &dyn Fn(&str) -> Option<String>) -> Result<CiShard, Error> {
    // (CI, index variable, total variable, whether the index counts from 0)
    const KNOWN: [(&str, &str, &str, bool); 5] = [
        ("GitLab", "CI_NODE_INDEX", "CI_NODE_TOTAL", false),
        ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
        ("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", true),
        ("Bazel", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", true),
        ("Kubernetes", "JOB_COMPLETION_INDEX", "PRUN_SHARD_TOTAL", true),
    ];
    let number = |name: &'static str| -> Result<Option<u64>, Error> {
        match env(name) {
            None => Ok(None),
            Some(text) => {
                text.trim().parse().map(Some).map_err(|_| Error::NotANumber { name, text })
            }
        }
    };
    if let Some(text) = env("PRUN_SHARD") {
        let bad = || Error::PrunShard(text.clone());
        let (shard, of) = text.split_once('/').ok_or_else(bad)?;
        let (shard, of) = (shard.parse().map_err(|_| bad())?, of.parse().map_err(|_| bad())?);
        if shard == 0 || of == 0 || shard > of {
            return Err(bad());
        }
        return Ok(CiShard { shard, of, ci: "PRUN_SHARD", variables: "PRUN_SHARD" });
    }
    for (ci, index, total, from_zero) in KNOWN {
        let (Some(index_value), Some(of)) = (number(index)?, number(total)?) else { continue };
        let shard = index_value + u64::from(from_zero);
        if of == 0 || shard == 0 || shard > of {
            return Err(Error::NotAShard { ci, index, index_value, total, of });
        }
        let variables = match ci {
            "GitLab" => "CI_NODE_INDEX, CI_NODE_TOTAL",
            "CircleCI" => "CIRCLE_NODE_INDEX, CIRCLE_NODE_TOTAL",
            "Buildkite" => "BUILDKITE_PARALLEL_JOB, BUILDKITE_PARALLEL_JOB_COUNT",
            "Bazel" => "TEST_SHARD_INDEX, TEST_TOTAL_SHARDS",
            _ => "JOB_COMPLETION_INDEX, PRUN_SHARD_TOTAL",
        };
        return Ok(CiShard { shard, of, ci, variables });
    }
    Err(Error::NoCi)
}

impl FromStr for Partition {
    type Err = Error;

    fn from_str(text: &str) -> Result<Partition, Error> {
        let usage = || Error::Usage(text.to_owned());
        let (kind, shards) = text.split_once(':').ok_or_else(usage)?;
        let (shard, of) = if shards == "auto" {
            let found = ci_shard(&|name| std::env::var(name).ok())
                .map_err(|why| Error::Auto { text: text.to_owned(), why: Box::new(why) })?;
            eprintln!(
                "note: --partition {text}: shard {} of {}, from {} ({})",
                found.shard, found.of, found.ci, found.variables
            );
            (found.shard, found.of)
        } else {
            let (shard, of) = shards.split_once('/').ok_or_else(usage)?;
            (shard.parse().map_err(|_| usage())?, of.parse().map_err(|_| usage())?)
        };
        if shard == 0 || of == 0 || shard > of {
            return Err(usage());
        }
        match kind {
            "count" => Ok(Partition::Count { shard, of }),
            "hash" => Ok(Partition::Hash { shard, of }),
            "timing" => Ok(Partition::Timing { shard, of }),
            _ => Err(usage()),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Count { shard, of } => write!(f, "count:{shard}/{of}"),
            Partition::Hash { shard, of } => write!(f, "hash:{shard}/{of}"),
            Partition::Timing { shard, of } => write!(f, "timing:{shard}/{of}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Vec<(String, Duration)> {
        (0..200u64)
            .map(|i| (format!("crate::bin test_{i}"), Duration::from_millis(i * 37 % 1000)))
            .collect()
    }

    #[test]
    fn each_ci_says_its_shard_in_its_own_variables() {
        fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        }
        let found = ci_shard(&env_of(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "4")])).unwrap();
        assert_eq!((found.shard, found.of, found.ci), (2, 4, "GitLab"));
        let k8s = [("JOB_COMPLETION_INDEX", "0"), ("PRUN_SHARD_TOTAL", "3")];
        let found = ci_shard(&env_of(&k8s)).unwrap();
        assert_eq!((found.shard, found.of, found.ci), (1, 3, "Kubernetes"));
        let bazel = [("TEST_SHARD_INDEX", "3"), ("TEST_TOTAL_SHARDS", "4")];
        assert_eq!(ci_shard(&env_of(&bazel)).unwrap().shard, 4);
        let circle = [("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "2")];
        assert_eq!(ci_shard(&env_of(&circle)).unwrap().shard, 2);
        assert_eq!(ci_shard(&env_of(&[("PRUN_SHARD", "3/5")])).unwrap().of, 5);
        assert!(ci_shard(&env_of(&[("CI_NODE_INDEX", "5"), ("CI_NODE_TOTAL", "4")])).is_err());
        assert!(ci_shard(&env_of(&[])).unwrap_err().to_string().contains("no CI shard variables"));
    }

    #[test]
    fn exactly_one_shard_reports_a_test_no_shard_runs() {
        for id in ["plain tests::ignored", "a b", "x"] {
            let shards = (1..=4).filter(|&k| Partition::Count { shard: k, of: 4 }.reports(id));
            assert_eq!(shards.count(), 1, "{id}");
        }
    }

    #[test]
    fn every_test_lands_in_exactly_one_shard() {
        let tests = suite();
        for kind in ["count", "hash", "timing"] {
            let shards: Vec<Vec<bool>> = (1..=4)
                .map(|k| format!("{kind}:{k}/4").parse::<Partition>().unwrap().select(&tests))
                .collect();
            for index in 0..tests.len() {
                let homes = shards.iter().filter(|shard| shard[index]).count();
                assert_eq!(homes, 1, "{kind}: {}", tests[index].0);
            }
        }
    }

    #[test]
    fn timing_shards_balance_time() {
        let tests = suite();
        let total: Duration = tests.iter().map(|t| t.1).sum();
        let longest: Duration = (1..=4)
            .map(|k| {
                let shard = Partition::Timing { shard: k, of: 4 }.select(&tests);
                tests
                    .iter()
                    .zip(shard)
                    .filter(|(_, ours)| *ours)
                    .map(|(t, _)| t.1)
                    .sum::<Duration>()
            })
            .max()
            .unwrap();
        assert!(longest <= total / 4 + Duration::from_secs(1), "{longest:?} of {total:?}");
        // Order of the input does not matter.
        let mut reversed = tests.clone();
        reversed.reverse();
        let shard = |tests: &[(String, Duration)]| {
            let mut ids: Vec<String> = tests
                .iter()
                .zip(Partition::Timing { shard: 2, of: 4 }.select(tests))
                .filter(|(_, ours)| *ours)
                .map(|(t, _)| t.0.clone())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(shard(&tests), shard(&reversed));
    }

    #[test]
    fn hash_shards_do_not_depend_on_order() {
        let p: Partition = "hash:2/3".parse().unwrap();
        let one = vec![("a b".to_owned(), Duration::ZERO)];
        let mut many = vec![("x y".to_owned(), Duration::ZERO); 99];
        many.push(one[0].clone());
        assert_eq!(p.select(&one)[0], p.select(&many)[99]);
        // FNV-1a's published test vectors: the shards of a suite never move between machines.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_partitions_say_what_is_expected() {
        for bad in ["count:0/3", "count:4/3", "hash:1", "slice:1/2", "count:a/b"] {
            assert!(
                bad.parse::<Partition>().unwrap_err().to_string().contains("count:K/N"),
                "{bad}"
            );
        }
        assert_eq!(
            "timing:1/2".parse::<Partition>().ok(),
            Some(Partition::Timing { shard: 1, of: 2 })
        );
    }
}
