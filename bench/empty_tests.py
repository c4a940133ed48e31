#!/usr/bin/env python3
"""What a test costs the runner itself: many empty `#[test]`s under cargo test and cargo prun.

Generates a throw-away crate (target/bench-empty/) with N empty plain tests spread over B test
binaries, builds it (debug, as `cargo test` does by default), then times `cargo test --tests`
and `cargo prun --tests` (with the history of one earlier run, as a developer's second run has),
taking turns, and reports the median of R runs of each and the cost per test. It is a
measurement, not a test: it never fails on a number.

    python3 bench/empty_tests.py --tests 20001 --binaries 1
    python3 bench/empty_tests.py --tests 100000 --binaries 10 --runs 3
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from run import timed  # bench/run.py's: seconds to run a command, which must succeed

ROOT = Path(__file__).resolve().parent.parent


def generate(crate, tests, binaries):
    if crate.exists():
        shutil.rmtree(crate)
    (crate / "tests").mkdir(parents=True)
    (crate / "src").mkdir()
    (crate / "src" / "lib.rs").write_text("")
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "bench-empty"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[workspace]\n'
    )
    per = -(-tests // binaries)
    for b in range(binaries):
        names = range(b * per, min(tests, (b + 1) * per))
        source = "\n".join(f"#[test]\nfn t{i:06}() {{}}" for i in names)
        (crate / "tests" / f"empty_{b:02}.rs").write_text(source + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=20001)
    parser.add_argument("--binaries", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    crate = ROOT / "target" / "bench-empty" / f"{args.tests}-in-{args.binaries}"
    generate(crate, args.tests, args.binaries)
    env = dict(os.environ, NO_COLOR="1")
    env.pop("RUST_BACKTRACE", None)
    built = subprocess.run(["cargo", "test", "--tests", "--no-run", "-q"], cwd=crate, env=env, capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"building the tests failed:\n{built.stderr[-4000:]}")
    # `cargo prun` as users run it: this checkout's cargo-prun, found by cargo on the PATH.
    out = subprocess.run(["cargo", "build", "--release", "-p", "cargo-prun"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building cargo-prun failed:\n{out.stderr[-4000:]}")
    env["PATH"] = f"{ROOT / 'target' / 'release'}{os.pathsep}{env['PATH']}"
    env["PRUN_HISTORY_DIR"] = str(crate / "prun-history")
    shutil.rmtree(crate / "prun-history", ignore_errors=True)
    runners = {
        "cargo test --tests": ["cargo", "test", "--tests", "-q"],
        "cargo prun --tests": ["cargo", "prun", "--tests", "-q"],
    }
    for cmd in runners.values():
        timed(cmd, crate, env)  # warm caches; cargo prun's run to learn from
    times = {name: [] for name in runners}
    for _ in range(args.runs):
        for name, cmd in runners.items():
            times[name].append(timed(cmd, crate, env))
    history = crate / "prun-history" / "history.bin"
    print(f"\n{args.tests} empty tests in {args.binaries} binaries, median of {args.runs} runs:\n")
    print("| runner | wall | per test |")
    print("|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.2f}s | {median / args.tests * 1e6:.0f} µs |")
        print(f"{name:20} {' '.join(f'{t:.3f}' for t in runs)}", file=sys.stderr)
    ratio = statistics.median(times["cargo prun --tests"]) / statistics.median(times["cargo test --tests"])
    print(f"\ncargo prun / cargo test: {ratio:.2f}x; history file: {history.stat().st_size / args.tests:.0f} bytes a test")


if __name__ == "__main__":
    main()
