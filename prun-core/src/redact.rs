//! Secrets out of what prun prints and reports: values of environment variables named like
//! secrets, and matches of the config's `[redact]` patterns, become `[REDACTED]`. The harness
//! applies it to what it captured of a test; `cargo prun` to every event before any report.

use std::borrow::Cow;

use regex_lite::Regex;

/// Names whose values are always hidden.
const SECRET_NAMES: [&str; 4] = ["*TOKEN*", "*SECRET*", "*PASSWORD*", "*KEY*"];
const REDACTED: &str = "[REDACTED]";

/// A `[redact]` pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("prun.toml [redact] patterns: {pattern:?}: {source}")]
    Invalid { pattern: String, source: regex_lite::Error },
    #[error(
        "prun.toml [redact] patterns: {0:?} matches the empty string, so it would redact between \
         every two characters; write a pattern that needs at least one character"
    )]
    MatchesEmpty(String),
}

#[derive(Debug, Default)]
pub struct Redactor {
    /// Secret values, longest first (so a value that contains another goes whole).
    values: Vec<String>,
    patterns: Vec<Regex>,
}

impl Redactor {
    /// From the environment prun runs in and the config's `[redact]` table.
    pub fn new(
        env: impl Iterator<Item = (String, String)>,
        names: &[String],
        patterns: &[String],
    ) -> Result<Redactor, PatternError> {
        let globs: Vec<String> =
            SECRET_NAMES.iter().map(|s| (*s).to_owned()).chain(names.iter().cloned()).collect();
        let mut values: Vec<String> = env
            // Very short values ("1", "on") would blank out ordinary output.
            .filter(|(name, value)| value.len() >= 4 && globs.iter().any(|g| glob(g, name)))
            .map(|(_, value)| value)
            .collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        let patterns = patterns
            .iter()
            .map(|p| {
                let regex = Regex::new(p)
                    .map_err(|source| PatternError::Invalid { pattern: p.clone(), source })?;
                if regex.is_match("") {
                    return Err(PatternError::MatchesEmpty(p.clone()));
                }
                Ok(regex)
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { values, patterns })
    }

    /// `text` with every secret replaced.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for value in &self.values {
            if text.contains(value.as_str()) {
                text = Cow::Owned(text.replace(value.as_str(), REDACTED));
            }
        }
        for pattern in &self.patterns {
            if let Cow::Owned(replaced) = pattern.replace_all(&text, REDACTED) {
                text = Cow::Owned(replaced);
            }
        }
        text
    }
}

/// Case-insensitive match of `name` against `pattern`, where `*` matches any run.
fn glob(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_uppercase(), name.to_ascii_uppercase());
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else { return false };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn names_like_secrets_are_redacted_by_default() {
        let env =
            env(&[("GITHUB_TOKEN", "ghp_abc123"), ("db_password", "hunter22"), ("HOME", "/root")]);
        let r = Redactor::new(env, &[], &[]).unwrap();
        assert_eq!(
            r.text("token ghp_abc123, pw hunter22, home /root"),
            "token [REDACTED], pw [REDACTED], home /root"
        );
    }

    #[test]
    fn config_names_and_patterns_add_more() {
        let env = env(&[("MY_CREDENTIAL", "c-r-e-d"), ("SHORT_KEY", "1")]);
        let names = ["*CREDENTIAL".to_owned()];
        let patterns = [r"sk-[a-z0-9]{8}".to_owned()];
        let r = Redactor::new(env, &names, &patterns).unwrap();
        assert_eq!(r.text("c-r-e-d sk-abcd1234 1"), "[REDACTED] [REDACTED] 1");
        let err = Redactor::new(std::iter::empty(), &[], &["(".to_owned()]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("[redact] patterns"), "{err}");
    }

    #[test]
    fn a_pattern_matching_nothing_at_all_is_refused() {
        for pattern in ["", "a*", "(x)?", "^"] {
            let err = Redactor::new(env(&[]), &[], &[pattern.to_owned()]).unwrap_err();
            let err = err.to_string();
            assert!(err.contains("[redact] patterns") && err.contains("empty string"), "{err}");
        }
        assert!(Redactor::new(env(&[]), &[], &["a+".to_owned()]).is_ok());
    }

    #[test]
    fn globs_match_like_shells() {
        assert!(glob("*TOKEN*", "ci_token_x"));
        assert!(glob("AWS_*_KEY", "AWS_SECRET_ACCESS_KEY"));
        assert!(!glob("*TOKEN", "TOKENS"));
        assert!(glob("EXACT", "exact"));
    }
}
