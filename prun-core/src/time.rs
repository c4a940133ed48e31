//! Durations as people read them.

use std::time::Duration;

/// `1.5s`, `250ms`, `2m 5s`: short, and exact enough for a report line.
pub(crate) fn pretty(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", duration.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {}s", duration.as_secs() / 60, duration.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_person_would_write_it() {
        assert_eq!(pretty(Duration::from_millis(250)), "250ms");
        assert_eq!(pretty(Duration::from_millis(1500)), "1.5s");
        assert_eq!(pretty(Duration::from_secs(125)), "2m 5s");
    }
}
