#!/usr/bin/env python3
"""prun's benchmark on real suites: published crates, their own tests, unchanged.

cargo itself fetches each crate (a throw-away project depends on it; nothing is downloaded any
other way and no source is committed), the crate's published source is copied to
target/bench-real/, built in release mode, and its tests are run under `cargo test --tests`,
`cargo nextest run` and `cargo prun --tests`, all on the same thread count, and `cargo prun
--tests` as it runs by default (no -j: as many tests at once as the measured CPU lets the cores
serve). The script reports the median wall time of the commands as a user types them, the CPU
time each used (its processes and their children), and each runner's pass/fail counts.
Each command runs once untimed first: caches are warm for all, and cargo prun has the history
of one earlier run (as it would on any machine that ran the suite before).

    python3 bench/real_suites.py                 # the default crates, 5 runs each
    python3 bench/real_suites.py --crate semver@1 --runs 5
    python3 bench/real_suites.py --backtrace     # every runner under RUST_BACKTRACE=1

RUST_BACKTRACE is unset for every runner unless --backtrace sets it to 1, as many CI
configurations do: then the first panic of each test process (a `#[should_panic]` test's
too) reads the binary's symbols, about 0.15 s here, once per process.
"""

import argparse
import json
import resource
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-real"
# Crates with plain #[test]s that build without system libraries: three with real work
# (bytes' 1,079 tests, hashbrown, memchr), four that cargo test finishes in 30-110 ms, and one
# whose tests mostly wait (crossbeam-channel: sleeps, timeouts, blocked receivers).
DEFAULT_CRATES = [
    "crossbeam-channel@0.5.15",
    "bytes@1.12.2",
    "hashbrown@0.17.1",
    "memchr@2.8.3",
    "regex-syntax@0.8.12",
    "semver@1.0.28",
    "itoa@1.0.19",
    "smallvec@1.16.6",
]


def run(cmd, cwd, env=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    return out


def fetch(specs):
    """{name: source dir}, fetched by cargo through a throw-away project."""
    project = WORK / "fetch"
    if project.exists():
        shutil.rmtree(project)
    (project / "src").mkdir(parents=True)
    (project / "src" / "lib.rs").write_text("")
    deps = "\n".join(f'{name} = "={version}"' for name, version in (s.split("@") for s in specs))
    (project / "Cargo.toml").write_text(
        f'[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n{deps}\n\n[workspace]\n'
    )
    meta = run(["cargo", "metadata", "--format-version=1"], project)
    if meta.returncode != 0:
        sys.exit(f"cargo could not fetch the crates:\n{meta.stderr[-3000:]}")
    wanted = {s.split("@")[0] for s in specs}
    return {
        p["name"]: Path(p["manifest_path"]).parent
        for p in json.loads(meta.stdout)["packages"]
        if p["name"] in wanted
    }


def prepare(name, source):
    """A copy of the crate to build on its own, as its own workspace."""
    crate = WORK / name
    if crate.exists():
        shutil.rmtree(crate)
    shutil.copytree(source, crate)
    manifest = crate / "Cargo.toml"
    text = manifest.read_text()
    if "[workspace]" not in text:
        manifest.write_text(text + "\n[workspace]\n")
    return crate


def counts(runner, out):
    """(passed, failed) from a runner's closing lines."""
    text = out.stdout + out.stderr
    if runner == "cargo test":
        passed = sum(int(n) for n in re.findall(r"test result: \w+\. (\d+) passed", text))
        failed = sum(int(n) for n in re.findall(r"(\d+) failed;", text))
        return passed, failed
    if runner == "nextest":
        m = re.search(r"(\d+) tests? run: (\d+) passed(?:, (\d+) failed)?", text)
        return (int(m.group(2)), int(m.group(3) or 0)) if m else (None, None)
    m = re.search(r"^(\d+) passed, (\d+) failed", text, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crate", action="append", help="NAME@VERSION (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--backtrace", action="store_true", help="run every runner under RUST_BACKTRACE=1")
    args = parser.parse_args()
    specs = args.crate or DEFAULT_CRATES
    threads = str(args.threads)

    build = run(["cargo", "build", "--release", "-p", "cargo-prun"], ROOT)
    if build.returncode != 0:
        sys.exit(f"building cargo-prun failed:\n{build.stderr[-3000:]}")
    # `cargo prun` as users run it: cargo finds cargo-prun on the PATH (and sets CARGO for it).
    env = dict(os.environ, NO_COLOR="1")
    env["PATH"] = f"{ROOT / 'target' / 'release'}{os.pathsep}{env['PATH']}"
    cargo_prun = "cargo"
    env.pop("RUST_BACKTRACE", None)
    if args.backtrace:
        env["RUST_BACKTRACE"] = "1"

    rows = []
    for name, source in sorted(fetch(specs).items()):
        crate = prepare(name, source)
        built = run(["cargo", "test", "--release", "--tests", "--no-run"], crate, env)
        if built.returncode != 0:
            print(f"{name}: its tests do not build here, skipped\n{built.stderr[-1500:]}", file=sys.stderr)
            continue
        runners = {
            "cargo test": ["cargo", "test", "--release", "--tests", "--", "--test-threads", threads],
            "nextest": ["cargo", "nextest", "run", "--release", "--no-fail-fast", "-j", threads],
            "cargo prun": [cargo_prun, "prun", "--release", "--tests", "--no-fail-fast", "-j", threads],
            "cargo prun, default": [cargo_prun, "prun", "--release", "--tests", "--no-fail-fast"],
        }
        # Once first, not timed: warm caches for every runner, and cargo prun's history.
        for cmd in runners.values():
            run(cmd, crate, env)
        # Then round by round, each runner once per round: a machine that slows down for a
        # while slows all three alike.
        times = {runner: [] for runner in runners}
        cpu = {runner: [] for runner in runners}
        outs = {}
        for _ in range(args.runs):
            for runner, cmd in runners.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                outs[runner] = run(cmd, crate, env)
                times[runner].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[runner].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        result = {}
        for runner in runners:
            result[runner] = (statistics.median(times[runner]), counts(runner, outs[runner]), statistics.median(cpu[runner]))
            print(f"{name:14} {runner:10} {' '.join(f'{t:.3f}' for t in times[runner])} counts={result[runner][1]}", file=sys.stderr)
        rows.append((name, source.name, result))

    print(f"\nMedian wall time (and CPU time) of {args.runs} runs of each command, {threads} threads unless default; (passed, failed).\n")
    print("| crate | cargo test --tests | cargo nextest run | cargo prun --tests -j | cargo prun --tests (default) | prun -j vs best | default vs best |")
    print("|---|---|---|---|---|---|---|")
    for name, version, r in rows:
        cell = lambda k: f"{r[k][0]:.2f}s (cpu {r[k][2]:.2f}s) {r[k][1]}"
        best = min(r["cargo test"][0], r["nextest"][0])
        print(f"| {version} | {cell('cargo test')} | {cell('nextest')} | {cell('cargo prun')} | {cell('cargo prun, default')} | {r['cargo prun'][0] / best:.2f}x | {r['cargo prun, default'][0] / best:.2f}x |")


if __name__ == "__main__":
    main()
