//! How a libtest batch process is told which tests to run, in few words.
//!
//! libtest takes names to run: with `--exact`, a test runs when its name equals one of them,
//! checked one by one, so a process given F names in a binary of N tests does N × F string
//! comparisons before its first test, and the batches of a binary together N²: 400 million for
//! a binary of 20,000 tests, seconds of CPU. Without `--exact` a name is a substring (`t0` runs
//! every test whose name contains `t0`), and a batch of thousands of tests is often a few such
//! substrings. So a batch is given as the substrings that choose exactly its tests, checked
//! against every name the binary has (its ignored tests and benchmarks too), when a few are
//! enough; otherwise as its names.

use memchr::memmem;

/// At most this many substrings for a batch; past it, its names are given.
const MOST: usize = 64;

/// Every name a libtest binary has, for checking what a substring chooses.
#[derive(Debug)]
pub(crate) struct Universe {
    /// Every name after a NUL (which no name has), sorted as libtest runs them: `\0a\0b`.
    joined: String,
    /// Where each name is in `joined`, in that order (one copy of the names, not one each).
    sorted: Vec<(usize, usize)>,
    /// Every name but its first byte, after a NUL: where a substring found is inside a name.
    inner: Vec<u8>,
    /// No name holds a NUL, so `inner` tells names apart (else no batch is said in substrings).
    separable: bool,
}

impl Universe {
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Universe {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut joined = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        let mut sorted = Vec::with_capacity(names.len());
        let mut inner = Vec::with_capacity(joined.capacity());
        for name in &names {
            joined.push('\0');
            sorted.push((joined.len(), joined.len() + name.len()));
            joined.push_str(name);
            inner.push(0);
            inner.extend_from_slice(name.as_bytes().get(1..).unwrap_or_default());
        }
        let separable = !names.iter().any(|name| name.contains('\0'));
        Universe { joined, sorted, inner, separable }
    }

    /// Substrings whose tests, among every test of the binary, are exactly `batch`; `None`
    /// when that takes more than a few (or cannot be said: a name inside another's).
    pub(crate) fn cover(&self, batch: &[&str]) -> Option<Vec<String>> {
        let mut batch: Vec<&str> = batch.to_vec();
        batch.sort_unstable();
        batch.dedup();
        if batch.is_empty() || !self.separable {
            return None;
        }
        let mut chosen = Vec::new();
        // Nodes of the batch's trie: a run of names sharing their first `depth` bytes, and
        // whether a shorter prefix of theirs is known to occur only at names' starts (then so
        // does every longer one, and the binary's names need no scan for it).
        let mut stack = vec![(0, batch.len(), common_prefix(&batch), false)];
        while let Some((lo, hi, depth, starts_only)) = stack.pop() {
            let group = &batch[lo..hi];
            let prefix = &group[0][..depth];
            let mut scanned = None;
            if !prefix.is_empty() && self.starting_with(prefix) == group.len() {
                // As many names start with it as the batch has: it chooses exactly them if
                // no name has it anywhere else.
                if starts_only || *scanned.insert(self.only_at_starts(prefix)) {
                    chosen.push(prefix.to_owned());
                    if chosen.len() > MOST {
                        return None;
                    }
                    continue;
                }
            }
            // A name that is the prefix itself chooses more than itself: no substring says it.
            if group[0].len() == depth {
                return None;
            }
            // One scan here saves one for each run below.
            let starts_only = starts_only
                || (!prefix.is_empty() && scanned.unwrap_or_else(|| self.only_at_starts(prefix)));
            // Split by the character after the prefix.
            let mut start = lo;
            while start < hi {
                let next = next_char(batch[start], depth);
                let end =
                    start + batch[start..hi].partition_point(|name| next_char(name, depth) == next);
                let deeper = depth + next.len_utf8();
                let common = common_prefix(&batch[start..end]).max(deeper);
                stack.push((start, end, common, starts_only));
                start = end;
            }
        }
        // In the order libtest runs them (not that it matters to libtest).
        chosen.sort_unstable();
        Some(chosen)
    }

    /// How many names of the binary start with `prefix`.
    fn starting_with(&self, prefix: &str) -> usize {
        let name = |&(start, end): &(usize, usize)| &self.joined[start..end];
        let from = self.sorted.partition_point(|at| name(at) < prefix);
        self.sorted[from..].partition_point(|at| name(at).starts_with(prefix))
    }

    /// Whether no name of the binary has `prefix` anywhere but at its start: nowhere in the
    /// names past their first byte (a string found there starts at a character of the name,
    /// as UTF-8 never matches from the middle of one, and never spans two names, as no name
    /// holds the NUL between them).
    fn only_at_starts(&self, prefix: &str) -> bool {
        memmem::find(&self.inner, prefix.as_bytes()).is_none()
    }
}

/// The character of `name` at byte `at` (a boundary), or NUL past its end.
fn next_char(name: &str, at: usize) -> char {
    name[at..].chars().next().unwrap_or('\0')
}

/// The bytes every name of a sorted run starts with, to a character boundary.
fn common_prefix(sorted: &[&str]) -> usize {
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else { return 0 };
    let mut len = first.bytes().zip(last.bytes()).take_while(|(a, b)| a == b).count();
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What libtest runs given these substrings (no --exact): every name containing one.
    fn chosen<'a>(universe: &'a Universe, filters: &[String]) -> Vec<&'a str> {
        let mut names: Vec<&str> = universe
            .sorted
            .iter()
            .map(|&(start, end)| &universe.joined[start..end])
            .filter(|name| filters.iter().any(|f| name.contains(f.as_str())))
            .collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_run_of_generated_names_is_a_few_substrings() {
        let names: Vec<String> = (0..20_001).map(|i| format!("t{i:05}")).collect();
        let universe = Universe::new(names.iter().map(String::as_str));
        let batch: Vec<&str> = names[3_334..6_667].iter().map(String::as_str).collect();
        let filters = universe.cover(&batch).unwrap();
        assert!(filters.len() <= 40, "{filters:?}");
        assert_eq!(chosen(&universe, &filters), batch);
        let half: Vec<&str> = names[..10_000].iter().map(String::as_str).collect();
        assert_eq!(universe.cover(&half).unwrap(), ["t0"]);
    }

    #[test]
    fn a_substring_that_also_occurs_inside_another_name_is_not_used() {
        let names = ["a::x", "a::y", "b::a::x", "b::z", "c"];
        let universe = Universe::new(names);
        // `a::` is inside b::a::x, and so is `a::x`: no substrings say this batch.
        assert_eq!(universe.cover(&["a::x", "a::y"]), None);
        assert_eq!(universe.cover(&["a::y"]).unwrap(), ["a::y"]);
        assert_eq!(universe.cover(&["b::a::x", "b::z"]).unwrap(), ["b::"]);
        assert_eq!(universe.cover(&["c", "a::y"]).unwrap(), ["a::y", "c"]);
    }

    #[test]
    fn a_name_inside_another_is_found_past_a_first_character_of_several_bytes() {
        let universe = Universe::new(["äx", "yäx", "ü", "zü", "ö1", "ö2"]);
        assert_eq!(universe.cover(&["äx"]), None, "äx is inside yäx");
        assert_eq!(universe.cover(&["ü"]), None, "ü is inside zü");
        assert_eq!(universe.cover(&["yäx", "zü"]).unwrap(), ["yäx", "zü"]);
        assert_eq!(universe.cover(&["ö1", "ö2"]).unwrap(), ["ö"]);
    }

    #[test]
    fn tests_outside_the_batch_are_never_chosen_whatever_the_names() {
        // Names with shared stems, unicode, one the prefix of another, and ones left out.
        let names = [
            "parse::ok",
            "parse::ok_too",
            "parse::ökonomie",
            "parse::ø",
            "parse::x::deep",
            "render::ok",
            "render::parse::ok",
            "zz",
            "zz::a",
            "t1",
            "t10",
            "t100",
        ];
        let universe = Universe::new(names);
        for mask in 1u32..(1 << names.len()) {
            let batch: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            if let Some(filters) = universe.cover(&batch) {
                let mut expected = batch.clone();
                expected.sort_unstable();
                assert_eq!(chosen(&universe, &filters), expected, "{filters:?}");
            }
        }
        // A stem is one substring when nothing else contains it; `parse::ok` is inside
        // render::parse::ok, so a batch that holds it cannot be said.
        assert_eq!(universe.cover(&["zz", "zz::a"]).unwrap(), ["zz"]);
        assert_eq!(universe.cover(&names[..5]), None);
        assert_eq!(
            universe.cover(&names[2..5]).unwrap(),
            ["parse::x::deep", "parse::ökonomie", "parse::ø"]
        );
    }
}
