//! `--html PATH`: one self-contained page (no fetches): the summary, then a timeline with a
//! lane per worker in which each attempt's span (named), its groups, its wait for a group and
//! the rerun-alone phase show, then failures with their output, parallel-only and flaky tests
//! and the slowest tests. A section with nothing in it is left out.
//!
//! The lists are rendered here; the timeline is drawn in the page from the run's data
//! (embedded as JSON), so that it can scale to the window and show details on hover.

use std::fmt::Write;
use std::time::Duration;

use super::document::Document;
use super::{Finished, Outcome, ParallelOnly};
use prun::time::pretty as seconds;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.counts span { margin-right: 1.2em; font-weight: 600; }
.passed { color: #1a7f37; } .failed { color: #cf222e; } .flaky { color: #9a6700; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; max-height: 30em; }
details { margin: 0.4em 0; } summary { cursor: pointer; font-family: monospace; }
#timeline { width: 100%; border: 1px solid #ddd; }
#timeline text { font: 11px sans-serif; }
#timeline text.bar-name { font: 10px monospace; fill: #1f2328; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; }
"#;

const SCRIPT: &str = r#"
(function () {
  const info = JSON.parse(document.getElementById('run-data').textContent);
  const run = info.attempts;
  const colors = { passed: '#2da44e', flaky: '#d4a72c', retry: '#d4a72c', failed: '#cf222e',
    'timed-out': '#8250df', crashed: '#6e7781', skipped: '#afb8c1',
    'not-run': '#d0d7de', leaked: '#bf8700' };
  const lanes = [];
  const laneOf = {};
  for (const a of run) {
    const key = (a.shard || '') + '/' + a.worker;
    if (!(key in laneOf)) { laneOf[key] = lanes.length; lanes.push(key); }
  }
  lanes.sort();
  lanes.forEach((key, i) => { laneOf[key] = i; });
  // The axis ends when the run did (the header's time), or at the last attempt's end if later.
  const end = Math.max(1, info.duration || 0, ...run.map(a => a.start + a.duration));
  const left = 110, width = 1000, laneHeight = 26, top = 20, band = 60;
  const svg = document.getElementById('timeline');
  const ns = 'http://www.w3.org/2000/svg';
  const lanesEnd = top + lanes.length * laneHeight;
  svg.setAttribute('viewBox', `0 0 ${left + width + 10} ${lanesEnd + band + 20}`);
  const x = t => left + (t / end) * width;
  function add(tag, attrs, parent) {
    const el = document.createElementNS(ns, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    (parent || svg).appendChild(el);
    return el;
  }
  // Ticks at round values: 1, 2 or 5 times a power of ten milliseconds, 4 to 10 of them.
  let step = Math.pow(10, Math.floor(Math.log10(end / 10)));
  for (const m of [1, 2, 5, 10]) { if (end / (step * m) <= 10) { step *= m; break; } }
  const label = t => t >= 60000 && t % 60000 === 0 ? (t / 60000) + 'm'
    : t >= 1000 ? +(t / 1000).toFixed(3) + 's' : t + 'ms';
  for (let t = 0; t <= end + 1e-9; t += step) {
    add('line', { x1: x(t), x2: x(t), y1: top - 4, y2: lanesEnd, stroke: '#eee' });
    add('text', { x: x(t) - 8, y: top - 6, class: 'tick' }).textContent = label(Math.round(t));
  }
  // After the schedule, the failed tests ran again alone: that phase is drawn as a band.
  if (info.rerun_started != null) {
    const r = add('rect', { x: x(info.rerun_started), y: top - 2, height: lanesEnd - top + 2,
      width: Math.max(1, x(end) - x(info.rerun_started)), fill: '#ddf4ff', class: 'rerun-phase' });
    add('title', {}, r).textContent = 'failed tests rerun alone, to tell parallel-only failures';
    add('text', { x: x(info.rerun_started) + 3, y: lanesEnd - 4 }).textContent = 'rerun alone';
  }
  lanes.forEach((key, i) => {
    const [shard, worker] = key.split('/');
    add('text', { x: 4, y: top + i * laneHeight + 16 }).textContent =
      (shard ? shard + ' ' : '') + 'worker ' + worker;
  });
  for (const a of run) {
    const y = top + laneOf[(a.shard || '') + '/' + a.worker] * laneHeight;
    if (a.group_wait > 0) {
      const wait = add('rect', { x: x(a.start - a.group_wait), y: y + 1, height: 3,
        width: Math.max(1, x(a.start) - x(a.start - a.group_wait)), fill: '#8250df',
        class: 'group-wait' });
      add('title', {}, wait).textContent =
        `${a.id} waited ${a.group_wait} ms for group ${a.groups.join(', ')}`;
    }
    // Shaded by CPU use: a test that waited is pale, one that kept a core busy is solid.
    const cores = a.cpu == null ? null : a.cpu / Math.max(1, a.duration);
    const rect = add('rect', { x: x(a.start), y: y + 5, height: laneHeight - 8,
      width: Math.max(1, x(a.start + a.duration) - x(a.start)), fill: colors[a.kind] || '#999',
      'fill-opacity': cores == null ? 1 : (0.3 + 0.7 * Math.min(1, cores)).toFixed(2),
      stroke: a.groups.length ? '#0969da' : 'none', 'stroke-width': a.groups.length ? 2 : 0,
      class: 'span', 'data-test': a.id });
    // The test's name on its bar, as much as fits (about 6 px a character).
    const room = Math.floor((x(a.start + a.duration) - x(a.start) - 4) / 6);
    if (room >= 4) {
      const name = a.id.length <= room ? a.id : a.id.slice(0, room - 1) + '…';
      add('text', { x: x(a.start) + 2, y: y + laneHeight - 8, class: 'bar-name',
        'pointer-events': 'none' }).textContent = name;
    }
    add('title', {}, rect).textContent = `${a.id}: ${a.kind} in ${a.duration} ms` +
      (a.attempt > 1 ? `, attempt ${a.attempt}` : '') +
      (cores == null ? '' : `; CPU ${a.cpu} ms (${cores.toFixed(2)} cores)`) +
      (a.groups.length ? `; groups: ${a.groups.join(', ')}` : '');
  }
  // How many tests ran at once over the run (how an adaptive run's limit moved).
  const edges = [];
  for (const a of run) { edges.push([a.start, 1]); edges.push([a.start + a.duration, -1]); }
  edges.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  let now = 0, most = 1;
  const steps = [[0, 0]];
  for (const [t, d] of edges) { now += d; most = Math.max(most, now); steps.push([t, now]); }
  const yOf = n => lanesEnd + band + 10 - (n / most) * band;
  const points = [];
  let previous = 0;
  for (const [t, n] of steps) { points.push(`${x(t)},${yOf(previous)}`, `${x(t)},${yOf(n)}`); previous = n; }
  add('polyline', { points: points.join(' '), fill: 'none', stroke: '#0969da', class: 'at-once' });
  add('text', { x: 4, y: lanesEnd + 30 }).textContent = `at once (max ${most})`;
  document.getElementById('timeline-status').textContent =
    `${run.length} attempts on ${lanes.length} workers` + (info.why ? ` (${info.why})` : '');
})();
"#;

pub(crate) fn render(document: &Document) -> String {
    let mut page = String::new();
    let summary = document.summary.clone().unwrap_or_default();
    let finals: Vec<&Finished> = document.attempts.iter().filter(|a| !a.will_retry).collect();
    let title = match &document.meta.partition {
        Some(partition) => format!("prun run (shard {partition})"),
        None => "prun run".to_owned(),
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        page,
        "<p class=\"counts\"><span class=\"passed\">{} passed</span>\
         <span class=\"failed\">{} failed</span><span>{} skipped</span>\
         <span class=\"flaky\">{} flaky</span><span>{} threads</span><span>{}</span></p>",
        summary.passed,
        summary.failed,
        summary.skipped,
        summary.flaky.len(),
        document.meta.threads,
        seconds(summary.duration),
    );
    if document.summary.is_none() {
        page.push_str(
            "<p><b>The run did not finish</b>: this is what finished before it ended.</p>\n",
        );
    }

    page.push_str(
        "<h2>Timeline</h2>\n<p class=\"legend\"><span><i style=\"background:#2da44e\"></i>passed</span>\
         <span><i style=\"background:#d4a72c\"></i>flaky or retried</span>\
         <span><i style=\"background:#cf222e\"></i>failed</span>\
         <span><i style=\"background:#8250df\"></i>timed out; thin bar: waiting for a group</span>\
         <span><i style=\"border:2px solid #0969da\"></i>holds a group</span>\
         <span id=\"timeline-status\">the timeline needs JavaScript</span></p>\n\
         <svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\"></svg>\n",
    );
    let data: Vec<serde_json::Value> = document
        .attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": a.id(),
                "worker": a.worker,
                "shard": a.shard,
                "start": a.started_at.as_millis() as u64,
                "duration": a.duration.as_millis() as u64,
                "group_wait": a.group_wait.as_millis() as u64,
                "groups": a.groups,
                "attempt": a.attempt,
                "kind": a.outcome_kind(),
                "cpu": a.usage.map(|u| u.cpu_ms),
            })
        })
        .collect();
    // The axis runs to the header's time; where the bars end earlier, the page says why.
    let merged = document.attempts.iter().any(|a| a.shard.is_some());
    let why = if merged {
        Some("each shard's times count from that shard's start".to_owned())
    } else {
        document.rerun_started_ms.map(|at| {
            format!("from {}: the failed tests rerun alone", seconds(Duration::from_millis(at)))
        })
    };
    let data = serde_json::json!({
        "attempts": data,
        "duration": document.summary.as_ref().map(|s| s.duration.as_millis() as u64),
        "rerun_started": document.rerun_started_ms,
        "why": why,
    });
    let failures: Vec<&&Finished> = finals
        .iter()
        .filter(|f| {
            !f.passed && !matches!(f.outcome, Outcome::Skipped { .. } | Outcome::NotRun { .. })
        })
        .collect();
    section(&mut page, "Failures", failures.len(), |page| {
        for failure in &failures {
            let quarantined = if failure.quarantined { " (quarantined)" } else { "" };
            let _ = write!(
                page,
                "<details open><summary class=\"failed\">{} {}{quarantined}: {}</summary>",
                escape(&failure.binary),
                escape(&failure.name),
                escape(&failure.outcome.reason())
            );
            for (label, text) in [
                ("panic and log", &failure.captured),
                ("stdout", &failure.stdout),
                ("stderr", &failure.stderr),
            ] {
                if !text.trim().is_empty() {
                    let _ = write!(page, "<div>{label}</div><pre>{}</pre>", escape(text));
                }
            }
            page.push_str("</details>\n");
        }
    });
    let parallel_only: Vec<&ParallelOnly> =
        document.parallel_only.iter().filter(|found| !found.forgiven()).collect();
    section(&mut page, "Fails only in parallel", parallel_only.len(), |page| {
        page.push_str("<table><tr><th>test</th><th>why</th><th>beside it</th><th>culprits (--bisect)</th></tr>\n");
        for found in &parallel_only {
            let culprits = found.culprits.as_ref().map_or("not bisected".to_owned(), |c| {
                if c.is_empty() { "not reproduced in sequence".to_owned() } else { c.join(", ") }
            });
            let _ = writeln!(
                page,
                "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&found.binary),
                escape(&found.name),
                found.reason(),
                escape(&found.neighbours.join(", ")),
                escape(&culprits)
            );
        }
        page.push_str("</table>\n");
    });
    section(&mut page, "Flaky", summary.flaky.len(), |page| {
        page.push_str("<table><tr><th>test</th><th>passed on attempt</th></tr>\n");
        for (binary, name, attempts) in &summary.flaky {
            let _ = writeln!(
                page,
                "<tr><td>{} {}</td><td>{attempts}</td></tr>",
                escape(binary),
                escape(name)
            );
        }
        page.push_str("</table>\n");
    });
    let mut slowest: Vec<&&Finished> = finals.iter().collect();
    slowest.sort_by_key(|test| std::cmp::Reverse(test.duration));
    slowest.truncate(20);
    section(&mut page, "Slowest tests", slowest.len(), |page| {
        page.push_str("<table><tr><th>duration</th><th>test</th><th>groups</th></tr>\n");
        for test in &slowest {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                seconds(test.duration),
                escape(&test.binary),
                escape(&test.name),
                escape(&test.groups.join(", "))
            );
        }
        page.push_str("</table>\n");
    });

    // `</` cannot end the script element early once escaped.
    let data = serde_json::to_string(&data).expect("data serializes").replace("</", "<\\/");
    let _ = write!(
        page,
        "<script type=\"application/json\" id=\"run-data\">{data}</script>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    page
}

/// A list with its count; none at all when it is empty.
fn section(page: &mut String, title: &str, count: usize, body: impl FnOnce(&mut String)) {
    if count > 0 {
        let _ = writeln!(page, "<h2>{title} ({count})</h2>");
        body(page);
    }
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}
