//! Secrets out of every report: the one choke point. Every event passes [`event`] before any
//! reporter, the history or the terminal sees it, and every string in it is redacted, whatever
//! the field: names, outcomes' reasons (skip reasons too), output, neighbours, hints. Output is
//! redacted whole, before a report keeps only its first and last MiB, so no secret is cut in
//! two and shown in part.

use std::borrow::Cow;

pub(crate) use prun::redact::Redactor;

use super::{Event, Finished, Outcome, ParallelOnly};

/// `field`, redacted in place.
fn redact(redactor: &Redactor, field: &mut String) {
    if let Cow::Owned(redacted) = redactor.text(field) {
        *field = redacted;
    }
}

/// The event with every string in it redacted.
pub(crate) fn event(redactor: &Redactor, event: Event) -> Event {
    match event {
        Event::Started { mut binary, mut name, worker, running_for } => {
            redact(redactor, &mut binary);
            redact(redactor, &mut name);
            Event::Started { binary, name, worker, running_for }
        }
        Event::Slow { mut binary, mut name, running } => {
            redact(redactor, &mut binary);
            redact(redactor, &mut name);
            Event::Slow { binary, name, running }
        }
        Event::Finished(finished) => Event::Finished(self::finished(redactor, finished)),
        Event::Rerunning { tests, bisect_within } => Event::Rerunning { tests, bisect_within },
        Event::ParallelOnly(found) => Event::ParallelOnly(parallel_only(redactor, found)),
    }
}

/// A finished attempt with every string redacted, and its output cut to what a report keeps.
pub(crate) fn finished(redactor: &Redactor, mut finished: Finished) -> Finished {
    for field in [&mut finished.binary, &mut finished.name, &mut finished.captured] {
        redact(redactor, field);
    }
    for field in [&mut finished.stdout, &mut finished.stderr] {
        redact(redactor, field);
        if let Some(cut) = super::kept(field) {
            *field = cut;
        }
    }
    finished.groups.iter_mut().for_each(|group| redact(redactor, group));
    match &mut finished.outcome {
        Outcome::Failed { reason }
        | Outcome::Crashed { reason }
        | Outcome::Leaked { reason }
        | Outcome::Skipped { reason }
        | Outcome::NotRun { reason } => redact(redactor, reason),
        Outcome::Passed | Outcome::TimedOut { .. } => {}
    }
    finished
}

fn parallel_only(redactor: &Redactor, mut found: ParallelOnly) -> ParallelOnly {
    redact(redactor, &mut found.binary);
    redact(redactor, &mut found.name);
    found.neighbours.iter_mut().for_each(|n| redact(redactor, n));
    found.culprits.iter_mut().flatten().for_each(|c| redact(redactor, c));
    found
}

/// The history's hints, redacted (they name tests).
pub(crate) fn hints(redactor: &Redactor, hints: &mut [crate::history::Hint]) {
    use crate::history::Hint;
    for hint in hints {
        match hint {
            Hint::Category { test, .. } => redact(redactor, test),
            Hint::Read(words) => redact(redactor, words),
            Hint::More(_) => {}
        }
    }
}
