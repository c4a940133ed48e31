//! Secrets out of every report: prun's [`Redactor`] applied to each event before any reporter
//! sees it.

use std::borrow::Cow;

pub(crate) use prun::redact::Redactor;

use super::{Finished, Outcome};

/// The event with everything a test printed or said redacted.
pub(crate) fn finished(redactor: &Redactor, mut finished: Finished) -> Finished {
    for field in [&mut finished.stdout, &mut finished.stderr, &mut finished.captured] {
        if let Cow::Owned(redacted) = redactor.text(field) {
            *field = redacted;
        }
    }
    if let Outcome::Failed { reason } | Outcome::Crashed { reason } = &mut finished.outcome {
        *reason = redactor.text(reason).into_owned();
    }
    finished
}
