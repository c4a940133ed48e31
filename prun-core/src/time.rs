//! Durations: one way to read them (config, attributes, the command line) and one way to write
//! them (every report line, in the harness and in `cargo prun`).

use std::time::Duration;

/// `1.5s`, `250ms`, `30s`, `2m 5s`: short, and exact enough for a report line.
pub fn pretty(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if duration.as_millis() < 1000 {
        format!("{}ms", duration.as_millis())
    } else if secs < 60.0 {
        if duration.subsec_millis() == 0 {
            format!("{}s", duration.as_secs())
        } else {
            format!("{secs:.1}s")
        }
    } else if duration.as_secs().is_multiple_of(60) {
        format!("{}m", duration.as_secs() / 60)
    } else {
        format!("{}m {}s", duration.as_secs() / 60, duration.as_secs() % 60)
    }
}

/// A duration that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0:?} is not a duration: it must be 0 or more seconds")]
    Negative(String),
    #[error("{text:?} is not a duration ({why}); write e.g. 500ms, 30s, 1m30s")]
    Unreadable { text: String, why: String },
}

/// Reads `250ms`, `30s`, `1m30s`, `2m 5s`, `1h`: the one parser behind `timeout = "..."`,
/// prun.toml's durations and every duration flag.
/// A bare number is seconds (`90`, `1.5`).
pub fn parse(text: &str) -> Result<Duration, ParseError> {
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| ParseError::Negative(text.to_owned()));
    }
    humantime::parse_duration(trimmed)
        .map_err(|err| ParseError::Unreadable { text: text.to_owned(), why: err.to_string() })
}

/// Durations as whole milliseconds in the protocol and every report (`#[serde(with = ..)]`).
pub mod millis {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_person_would_write_it() {
        assert_eq!(pretty(Duration::from_millis(250)), "250ms");
        assert_eq!(pretty(Duration::from_millis(1500)), "1.5s");
        assert_eq!(pretty(Duration::from_secs(30)), "30s");
        assert_eq!(pretty(Duration::from_secs(120)), "2m");
        assert_eq!(pretty(Duration::from_secs(125)), "2m 5s");
    }

    #[test]
    fn one_parser_for_every_spelling() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse("soon").unwrap_err().to_string().contains("\"soon\" is not a duration"));
    }
}
