//! Slow tests: which running test has passed another `slow-timeout` period, from the run's
//! `Started` and `Finished` events and the clock. The report loop waits on its next deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Event;

#[derive(Debug)]
pub(crate) struct SlowWatch {
    period: Duration,
    /// The test each worker slot runs (a slot runs one at a time; a batch's tests finish
    /// together when it ends, but each starts when the one before it ended): binary, name,
    /// since when, and how many periods were told.
    running: HashMap<usize, (String, String, Instant, u32)>,
}

impl SlowWatch {
    pub(crate) fn new(period: Duration) -> SlowWatch {
        SlowWatch { period, running: HashMap::new() }
    }

    /// Notes a test starting or ending.
    pub(crate) fn see(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Started { binary, name, worker, running_for } => {
                let since = now.checked_sub(*running_for).unwrap_or(now);
                self.running.insert(*worker, (binary.clone(), name.clone(), since, 0));
            }
            Event::Finished(finished) => {
                let slot = self.running.get(&finished.worker);
                if slot.is_some_and(|(b, n, ..)| *b == finished.binary && *n == finished.name) {
                    self.running.remove(&finished.worker);
                }
            }
            Event::Slow { .. } | Event::ParallelOnly(_) | Event::Rerunning { .. } => {}
        }
    }

    /// When the next test passes a period; `None` while nothing runs.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.running.values().map(|(_, _, since, told)| *since + self.period * (told + 1)).min()
    }

    /// The tests that have passed another period by `now`, as events.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Event> {
        let mut due = Vec::new();
        for (binary, name, since, told) in self.running.values_mut() {
            let periods = u32::try_from(
                now.duration_since(*since).as_nanos() / self.period.as_nanos().max(1),
            )
            .unwrap_or(u32::MAX);
            if periods > *told {
                *told = periods;
                let running = self.period * periods;
                due.push(Event::Slow { binary: binary.clone(), name: name.clone(), running });
            }
        }
        due.sort_by(|a, b| match (a, b) {
            (Event::Slow { name: a, .. }, Event::Slow { name: b, .. }) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(name: &str, worker: usize) -> Event {
        Event::Started {
            binary: "b".into(),
            name: name.into(),
            worker,
            running_for: Duration::ZERO,
        }
    }

    #[test]
    fn a_test_is_told_slow_once_each_period_until_it_ends() {
        let start = Instant::now();
        let period = Duration::from_secs(60);
        let mut watch = SlowWatch::new(period);
        assert_eq!(watch.next(), None);
        watch.see(&started("hangs", 0), start);
        watch.see(&started("quick", 1), start + Duration::from_secs(30));
        assert_eq!(watch.next(), Some(start + period));
        assert!(watch.due(start + Duration::from_secs(59)).is_empty());
        let due = watch.due(start + Duration::from_secs(61));
        assert!(
            matches!(&due[..], [Event::Slow { name, running, .. }] if name == "hangs" && *running == period)
        );
        assert!(watch.due(start + Duration::from_secs(62)).is_empty(), "told once a period");
        assert_eq!(watch.next(), Some(start + Duration::from_secs(90)));
        let due = watch.due(start + Duration::from_secs(125));
        let names: Vec<_> = due
            .iter()
            .map(|e| match e {
                Event::Slow { name, .. } => name.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(names, ["hangs", "quick"]);
        // The next test on slot 1 ends the one before it there (a batch reports at its end).
        watch.see(&started("after quick", 1), start + Duration::from_secs(130));
        // Announced late, it counts from when it started.
        let late = Event::Started {
            binary: "b".into(),
            name: "late".into(),
            worker: 2,
            running_for: Duration::from_secs(50),
        };
        watch.see(&late, start + Duration::from_secs(130));
        assert_eq!(watch.due(start + Duration::from_secs(141)).len(), 1, "late is 61 s in");
        let due = watch.due(start + Duration::from_secs(185));
        assert!(matches!(&due[..], [Event::Slow { name, .. }] if name == "hangs"), "{due:?}");
    }
}
