//! `--trace PATH`: the run in Chrome's trace event format (Perfetto, chrome://tracing): one
//! track per worker with each attempt's span, and one track per group with the time tests
//! waited for it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::document::Document;

pub(crate) fn render(document: &Document) -> String {
    let mut events: Vec<Value> = Vec::new();
    // A process per shard (one, unless the document is a merge of shards).
    let mut shards: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for attempt in &document.attempts {
        let next = shards.len() + 1;
        shards.entry(attempt.shard.as_deref()).or_insert(next);
    }
    let mut tracks: BTreeMap<(usize, usize), ()> = BTreeMap::new();
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for attempt in &document.attempts {
        let pid = shards[&attempt.shard.as_deref()];
        tracks.insert((pid, attempt.worker), ());
        let start = micros(attempt.started_at);
        events.push(json!({
            "name": attempt.id(),
            "cat": attempt.outcome_kind(),
            "ph": "X",
            "ts": start,
            "dur": micros(attempt.duration).max(1),
            "pid": pid,
            "tid": attempt.worker,
            "args": {
                "outcome": attempt.outcome.reason(),
                "attempt": attempt.attempt,
                "groups": attempt.groups,
                "group_wait_ms": attempt.group_wait.as_millis() as u64,
            },
        }));
        if !attempt.group_wait.is_zero() {
            for group in &attempt.groups {
                let next = groups.len();
                let track = 1_000 + *groups.entry(group.as_str()).or_insert(next);
                events.push(json!({
                    "name": format!("{} {} waits", attempt.binary, attempt.name),
                    "cat": "group-wait",
                    "ph": "X",
                    "ts": start.saturating_sub(micros(attempt.group_wait)),
                    "dur": micros(attempt.group_wait),
                    "pid": pid,
                    "tid": track,
                }));
            }
        }
    }
    for (shard, pid) in &shards {
        let name = shard.map_or("prun".to_owned(), |s| format!("prun shard {s}"));
        events.push(metadata("process_name", *pid, 0, &name));
        for (group, index) in &groups {
            events.push(metadata("thread_name", *pid, 1_000 + index, &format!("group {group}")));
        }
    }
    for (pid, worker) in tracks.keys() {
        events.push(metadata("thread_name", *pid, *worker, &format!("worker {worker}")));
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" }).to_string()
}

fn metadata(kind: &str, pid: usize, tid: usize, name: &str) -> Value {
    json!({ "name": kind, "ph": "M", "pid": pid, "tid": tid, "args": { "name": name } })
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
