#!/usr/bin/env python3
"""prun's benchmark: the same generated suites under prun, libtest and nextest.

Each suite is generated twice into one throw-away workspace (target/bench/): as a prun harness
binary (#[prun::test], groups as `group = "db"`) and as a plain libtest binary (#[test], groups
as serial_test's #[serial(db)], and as a nextest test group in .config/nextest.toml). Every
runner gets the same thread count. The script reports the median wall time of several runs, and
its ratio to the schedule's lower bound

    max(longest test, total / threads, total of any exclusive group)

which no runner can beat. It is a measurement, not a test: it never fails on a number.

`cargo prun` is measured twice: with no history (every run starts from an empty one), and with
the history of one earlier run (what it learns: longest first, batches by duration). Then the
mixed suite is split into 4 shards, `timing` (by that history) and `count`, and each shard's
work (the sum of its tests' durations) is set against the ideal, total / 4.

    python3 bench/run.py                  # all suites, 3 runs each
    python3 bench/run.py --runs 5 --suite skewed --suite trivial
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench"


@dataclass
class Test:
    name: str
    ms: int = 0  # how long it takes
    kind: str = "sleep"  # "sleep", "io" (blocks on loopback I/O), "spin" (CPU-bound) or "trivial"
    group: str | None = None
    category: str | None = None


@dataclass
class Suite:
    name: str
    about: str
    tests: list = field(default_factory=list)
    binaries: int = 1  # tests are dealt round-robin over this many test binaries

    def targets(self, kind):
        """Test target names of one kind ("prun" or "libtest")."""
        if self.binaries == 1:
            return [f"with_{kind}"]
        return [f"with_{kind}_{i}" for i in range(self.binaries)]

    def tests_of(self, index):
        return self.tests[index :: self.binaries]

    def lower_bound(self, threads):
        """Seconds no schedule can beat; None where tests are too short to bound."""
        if all(t.kind == "trivial" for t in self.tests):
            return None
        total = sum(t.ms for t in self.tests)
        longest = max(t.ms for t in self.tests)
        return max([longest, total / threads] + self.group_totals()) / 1000

    def group_totals(self):
        """Each exclusive group's total time, in ms: its tests run one after another."""
        groups = {}
        for t in self.tests:
            if t.group:
                groups[t.group] = groups.get(t.group, 0) + t.ms
        return list(groups.values())

    def physical_bound(self, cores):
        """Seconds no runner can beat on `cores`, whatever it runs at once: the longest test,
        the CPU the tests burn shared by the cores, any exclusive group."""
        if all(t.kind == "trivial" for t in self.tests):
            return None
        cpu = sum(t.ms for t in self.tests if t.kind == "spin")
        longest = max(t.ms for t in self.tests)
        return max([longest, cpu / cores] + self.group_totals()) / 1000


def suites():
    rng = random.Random(7)
    out = []
    out.append(Suite("trivial", "5,000 trivial tests", [Test(f"t{i:04}", kind="trivial") for i in range(5000)]))
    skewed = [Test(f"short{i:03}", 10) for i in range(200)] + [Test("zz_long_last", 2000, category="slow")]
    out.append(Suite("skewed", "200 tests of 10 ms, one of 2 s declared (and named) last", skewed))
    grouped = [Test(f"db{i:03}", 20, group="db") for i in range(40)] + [Test(f"free{i:03}", 20) for i in range(80)]
    out.append(Suite("grouped", "120 tests of 20 ms, the first 40 in group db", grouped))
    out.append(Suite("cpu", "200 CPU-bound tests of 10 ms", [Test(f"cpu{i:03}", 10, kind="spin") for i in range(200)]))
    mixed = (
        [Test(f"quick{i:03}", 5) for i in range(150)]
        + [Test(f"cpu{i:03}", 15, kind="spin") for i in range(40)]
        + [Test(f"db{i:03}", 15, group="db") for i in range(30)]
        + [Test(f"slow{i}", 600, category="slow") for i in range(3)]
        + [Test(f"trivial{i:03}") for i in range(300)]
    )
    rng.shuffle(mixed)
    out.append(Suite("mixed", "523 tests shuffled: short, CPU-bound, grouped, 3 slow, trivial", mixed))
    spread = [Test(f"work{i:03}", 10) for i in range(240)] + [Test(f"db{i:02}", 10, group="db") for i in range(40)]
    rng.shuffle(spread)
    out.append(Suite("workspace", "4 test binaries: 240 tests of 10 ms, 40 more in one db group across them", spread, binaries=4))
    waiting = [Test("wait_longest", 2000)] + [
        Test(f"wait{i:03}", rng.randint(20, 500), kind=rng.choice(["sleep", "io"])) for i in range(299)
    ]
    rng.shuffle(waiting)
    out.append(Suite("waiting", "300 tests that sleep or block on loopback I/O for 20-500 ms (one 2 s)", waiting))
    half = [Test(f"cpu{i:03}", 20, kind="spin") for i in range(100)] + [
        Test(f"wait{i:03}", rng.randint(20, 500), kind=rng.choice(["sleep", "io"])) for i in range(100)
    ]
    rng.shuffle(half)
    out.append(Suite("half", "half-and-half: 100 CPU-bound tests of 20 ms, 100 waiting 20-500 ms, shuffled", half))
    return out


def body(t):
    if t.kind == "sleep":
        return f"std::thread::sleep(std::time::Duration::from_millis({t.ms}));"
    if t.kind == "io":
        # A server thread answers after the test's time; the test blocks reading the answer.
        return (
            "use std::io::{Read, Write}; "
            "let listener = std::net::TcpListener::bind(\"127.0.0.1:0\").unwrap(); "
            "let at = listener.local_addr().unwrap(); "
            "let server = std::thread::spawn(move || { let (mut s, _) = listener.accept().unwrap(); "
            f"std::thread::sleep(std::time::Duration::from_millis({t.ms})); s.write_all(b\"x\").unwrap(); }}); "
            "let mut client = std::net::TcpStream::connect(at).unwrap(); let mut byte = [0u8; 1]; "
            "client.read_exact(&mut byte).unwrap(); server.join().unwrap();"
        )
    if t.kind == "spin":
        return (
            f"let end = std::time::Instant::now() + std::time::Duration::from_millis({t.ms}); "
            "let mut x = 0u64; while std::time::Instant::now() < end { x = std::hint::black_box(x + 1); }"
        )
    return "assert_eq!(std::hint::black_box(1) + 1, 2);"


def prun_source(tests):
    lines = []
    for t in tests:
        keys = []
        if t.category:
            keys.append(f'category = "{t.category}"')
        if t.group:
            keys.append(f'group = "{t.group}"')
        attr = f"#[prun::test({', '.join(keys)})]" if keys else "#[prun::test]"
        lines.append(f"{attr}\nfn {t.name}() {{ {body(t)} }}")
    lines.append("prun::main!();")
    return "\n".join(lines) + "\n"


def libtest_source(tests):
    lines = []
    for t in tests:
        serial = f"#[serial_test::serial({t.group})]\n" if t.group else ""
        lines.append(f"#[test]\n{serial}fn {t.name}() {{ {body(t)} }}")
    return "\n".join(lines) + "\n"


def generate(selected):
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / ".config").mkdir(parents=True)
    members = []
    for suite in selected:
        crate = WORK / suite.name
        (crate / "tests").mkdir(parents=True)
        (crate / "src").mkdir()
        (crate / "src" / "lib.rs").write_text("")
        targets = ""
        for kind, source in (("prun", prun_source), ("libtest", libtest_source)):
            for index, target in enumerate(suite.targets(kind)):
                tests = suite.tests if suite.binaries == 1 else suite.tests_of(index)
                (crate / "tests" / f"{target}.rs").write_text(source(tests))
                harness = "\nharness = false" if kind == "prun" else ""
                targets += f'\n[[test]]\nname = "{target}"{harness}\n'
        (crate / "Cargo.toml").write_text(
            f"""[package]
name = "bench-{suite.name}"
version = "0.0.0"
edition = "2021"
publish = false

[dev-dependencies]
prun-core = {{ path = "{ROOT / 'prun-core'}" }}
serial_test = "3"
{targets}"""
        )
        members.append(f'"{suite.name}"')
    (WORK / "Cargo.toml").write_text(
        f"[workspace]\nresolver = \"2\"\nmembers = [{', '.join(members)}]\n\n"
        "[profile.release]\ndebug = false\n"
    )
    # The libtest binaries' groups, for nextest: its own way of saying "serial".
    (WORK / ".config" / "nextest.toml").write_text(
        "[test-groups]\ndb = { max-threads = 1 }\n\n"
        "[[profile.default.overrides]]\nfilter = 'test(/^db/)'\ntest-group = 'db'\n"
    )


def build():
    """Builds every test binary (release) and returns {(suite, target): path}."""
    cmd = ["cargo", "test", "--release", "--no-run", "--message-format=json", "--workspace"]
    out = subprocess.run(cmd, cwd=WORK, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building the benchmark suites failed:\n{out.stderr[-4000:]}")
    binaries = {}
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and "test" in msg["target"]["kind"]:
            package = msg["package_id"].split("bench-")[-1].split("@")[0].split("#")[0]
            binaries[(package, msg["target"]["name"])] = msg["executable"]
    return binaries


def timed(cmds, cwd, env=None):
    """Seconds to run `cmds`: one command, or a list of them run one after another."""
    if cmds and isinstance(cmds[0], str):
        cmds = [cmds]
    start = time.perf_counter()
    for cmd in cmds:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per runner and suite; the median is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="threads for every runner")
    parser.add_argument("--suite", action="append", help="only these suites (repeatable)")
    parser.add_argument("--no-nextest", action="store_true", help="skip cargo nextest")
    args = parser.parse_args()

    selected = [s for s in suites() if not args.suite or s.name in args.suite]
    generate(selected)
    binaries = build()
    threads = str(args.threads)
    env = dict(os.environ, NO_COLOR="1")
    env.pop("RUST_BACKTRACE", None)

    # `cargo prun` as users run it: cargo finds cargo-prun on the PATH (and sets CARGO for it).
    build_cargo_prun()
    env["PATH"] = f"{ROOT / 'target' / 'release'}{os.pathsep}{env['PATH']}"
    cargo_prun = "cargo"
    rows = []
    for suite in selected:
        crate = WORK / suite.name
        package = ["-p", f"bench-{suite.name}"]
        def tests_of(kind):
            return [arg for target in suite.targets(kind) for arg in ("--test", target)]
        history = WORK / "history" / suite.name
        prun_cmd = [cargo_prun, "prun", "--release", "-j", threads, *package, *tests_of("prun")]
        # By default (no -j) cargo prun admits tests by their measured CPU and memory.
        adaptive_cmd = [cargo_prun, "prun", "--release", *package, *tests_of("prun")]
        runners = {
            "cargo prun": prun_cmd,
            "cargo prun, history": prun_cmd,
            "cargo prun, plain": [cargo_prun, "prun", "--release", "-j", threads, *package, *tests_of("libtest")],
            "adaptive, history": adaptive_cmd,
            "adaptive, plain, history": [cargo_prun, "prun", "--release", *package, *tests_of("libtest")],
        }
        if suite.binaries == 1:
            runners["prun harness"] = [binaries[(suite.name, "with_prun")], "--test-threads", threads]
        # cargo test runs test binaries one after another: so does this.
        runners["cargo test"] = [
            [binaries[(suite.name, target)], "--test-threads", threads] for target in suite.targets("libtest")
        ]
        if not args.no_nextest:
            runners["nextest"] = [
                "cargo", "nextest", "run", "--release", "--no-fail-fast", "-j", threads, *package,
                *tests_of("libtest"), "--status-level", "none", "--final-status-level", "none",
            ]
        medians = {}
        for runner, cmd in runners.items():
            schedules = []

            def run_once():
                run_env = dict(env)
                if runner == "cargo prun, history":
                    run_env["PRUN_HISTORY_DIR"] = str(history)
                elif runner.endswith("history"):
                    # A history of its own for each adaptive runner (the shards read `history`).
                    run_env["PRUN_HISTORY_DIR"] = str(history) + "-" + runner.replace(", ", "-")
                else:
                    # A history of its own, empty, for every run.
                    fresh = WORK / "history" / "empty"
                    shutil.rmtree(fresh, ignore_errors=True)
                    run_env["PRUN_HISTORY_DIR"] = str(fresh)
                if not (runner.startswith("cargo prun") or runner.startswith("adaptive")):
                    return timed(cmd, crate, run_env)
                # The schedule's own time (after cargo's build check and discovery), from the
                # run's report.
                report = WORK / "report.json"
                wall = timed([*cmd, "--json", str(report)], crate, run_env)
                schedules.append(json.loads(report.read_text())["summary"]["duration_ms"] / 1000)
                return wall

            if runner.endswith("history"):
                run_once()  # the run it learns from
                schedules.clear()
            times = [run_once() for _ in range(args.runs)]
            medians[runner] = statistics.median(times)
            if schedules:
                medians[runner + " (schedule)"] = statistics.median(schedules)
            print(f"{suite.name:9} {runner:19} {' '.join(f'{t:.3f}' for t in times)}", file=sys.stderr)
        rows.append((suite, medians))
        if suite.name == "mixed":
            shard_rows = shards(cargo_prun, prun_cmd, crate, env, history)
        if suite.name == "workspace":
            archive_row = archive_shards(cargo_prun, prun_cmd, crate, env, history, [*package, *tests_of("prun")])

    bound_note = f"lower bound = max(longest, total / {threads}, total of any exclusive group)"
    print(f"\nMedian wall time of {args.runs} runs, {threads} threads each; {bound_note}.\n")
    cores = os.cpu_count() or 2
    print(f"Physical bound on {cores} cores = max(longest, CPU the tests burn / {cores}, total of any exclusive group): what no runner beats at any concurrency. cargo prun's adaptive runs (no -j) against it:\n")
    print("| suite | physical bound | adaptive, history | adaptive, plain, history | cargo test | nextest | adaptive / bound | adaptive plain / bound | cargo test / adaptive plain | nextest / adaptive plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for suite, m in rows:
        bound = suite.physical_bound(cores)
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
        cells = [suite.name, f"{bound:.2f}s" if bound else "n/a"]
        cells += [f"{m[c]:.2f}s" if c in m else "n/a" for c in ("adaptive, history", "adaptive, plain, history", "cargo test", "nextest")]
        cells += [ratio(m["adaptive, history"], bound), ratio(m["adaptive, plain, history"], bound)]
        cells += [ratio(m["cargo test"], m["adaptive, plain, history"]), ratio(m.get("nextest"), m["adaptive, plain, history"])]
        print("| " + " | ".join(cells) + " |")
    print(f"\nFixed thread counts (-j {threads}) against the thread bound:\n")
    columns = ["prun harness", "cargo prun", "cargo prun, history", "cargo prun, plain", "cargo test", "nextest"]
    print("| suite | lower bound | " + " | ".join(columns) + " | best prun / bound | history / bound (its schedule alone) | cargo test / best prun | nextest / cargo prun, plain |")
    print("|---|" + "---|" * (len(columns) + 5))
    for suite, m in rows:
        bound = suite.lower_bound(args.threads)
        best = min(m[r] for r in ("prun harness", "cargo prun", "cargo prun, history") if r in m)
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
        cells = [f"{suite.name}: {suite.about}", f"{bound:.2f}s" if bound else "n/a"]
        cells += [f"{m[c]:.2f}s" if c in m else "n/a" for c in columns]
        history_ratio = ratio(m["cargo prun, history"], bound)
        if bound:
            history_ratio += f" ({ratio(m['cargo prun, history (schedule)'], bound)})"
        cells += [ratio(best, bound), history_ratio]
        cells += [ratio(m["cargo test"], best), ratio(m.get("nextest"), m["cargo prun, plain"])]
        print("| " + " | ".join(cells) + " |")
    if "archive_row" in locals():
        a = archive_row
        ideal = sum(a["works"]) / len(a["works"])
        print("\nThe workspace suite on 4 CI machines: before, each shard job builds and runs its shard; now one job builds and archives, 4 jobs run from the archive (machine time = every job's wall time added up):\n")
        print("| clean build | archive (after the build) | archive size | shard runs from the archive | longest shard's work / ideal | 4 builds + 4 shards | build + archive + 4 shards | saved |")
        print("|---|---|---|---|---|---|---|---|")
        cells = [f"{a['build']:.2f}s", f"{a['archive']:.2f}s", f"{a['size'] / 2**20:.1f} MiB", " / ".join(f"{t:.2f}s" for t in a["shards"])]
        cells += [f"{max(a['works']) / ideal:.2f}x", f"{a['before']:.2f}s", f"{a['after']:.2f}s", f"{a['before'] / a['after']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if "shard_rows" in locals():
        print("\nThe mixed suite in 4 shards (work = the sum of a shard's test durations; ideal = total / 4):\n")
        print("| partition | shard work | longest | ideal | longest / ideal |")
        print("|---|---|---|---|---|")
        for kind, works in shard_rows:
            ideal = sum(works) / len(works)
            cells = [kind, " / ".join(f"{w:.2f}s" for w in works), f"{max(works):.2f}s", f"{ideal:.2f}s", f"{max(works) / ideal:.2f}x"]
            print("| " + " | ".join(cells) + " |")


def shards(cargo_prun, prun_cmd, crate, env, history):
    """Each shard's work, for `timing` (by the suite's history) and `count` shards of 4."""
    # Every shard must split by the same numbers: a timings file, as CI would keep one.
    timings = WORK / "timings.json"
    timed([cargo_prun, "prun", "timings", "export", str(timings)], crate, dict(env, PRUN_HISTORY_DIR=str(history)))
    rows = []
    for kind in ("timing", "count"):
        works = []
        for k in range(1, 5):
            report = WORK / f"shard-{kind}-{k}.json"
            cmd = [*prun_cmd, "--partition", f"{kind}:{k}/4", "--timings", str(timings), "--json", str(report)]
            timed(cmd, crate, dict(env, PRUN_HISTORY_DIR=str(history)))
            attempts = json.loads(report.read_text())["attempts"]
            works.append(sum(a["duration_ms"] for a in attempts) / 1000)
        rows.append((kind, works))
        print(f"shards    {kind:19} {' '.join(f'{w:.3f}' for w in works)}", file=sys.stderr)
    return rows


def archive_shards(cargo_prun, prun_cmd, crate, env, history, select):
    """The workspace suite on 4 CI machines, two ways. Before archives every shard job built the
    workspace and ran its shard; now one job builds and archives, and 4 jobs run their shard
    from the archive in a checkout of the sources. Returns what each way costs in machine time,
    and the shards' work against the ideal."""
    timings = WORK / "timings-workspace.json"
    timed([cargo_prun, "prun", "timings", "export", str(timings)], crate, dict(env, PRUN_HISTORY_DIR=str(history)))
    # What one shard job's build costs on a fresh machine: a clean build of the suite.
    clean = WORK / "clean-target"
    shutil.rmtree(clean, ignore_errors=True)
    build_s = timed(["cargo", "test", "--release", "--no-run", *select], crate, dict(env, CARGO_TARGET_DIR=str(clean)))
    shutil.rmtree(clean, ignore_errors=True)
    archive = WORK / "workspace.tar.zst"
    archive_s = timed([cargo_prun, "prun", "archive", "--release", *select, "--archive-file", str(archive)], crate, env)
    binary = ROOT / "target" / "release" / "cargo-prun"
    ignore = shutil.ignore_patterns("target", "history", "machine-*", "clean-target", "*.json", "*.tar.zst")
    built_runs, archived_runs, works = [], [], []
    for k in range(1, 5):
        partition = ["--partition", f"timing:{k}/4", "--timings", str(timings)]
        run_env = dict(env, PRUN_HISTORY_DIR=str(WORK / "history" / f"shard-{k}"))
        built_runs.append(timed([*prun_cmd, *partition], crate, run_env))
        machine = WORK / f"machine-{k}"
        shutil.rmtree(machine, ignore_errors=True)
        shutil.copytree(WORK, machine / "src", ignore=ignore)
        report = machine / "report.json"
        cmd = [str(binary), "prun", "--archive-file", str(archive), "--workspace-remap", str(machine / "src")]
        cmd += [*prun_cmd[prun_cmd.index("-j"):prun_cmd.index("-j") + 2], *partition, "--json", str(report)]
        archived_runs.append(timed(cmd, machine, run_env))
        works.append(sum(a["duration_ms"] for a in json.loads(report.read_text())["attempts"]) / 1000)
        shutil.rmtree(machine)
    print(f"archive   build {build_s:.2f} archive {archive_s:.2f} shards {archived_runs} built {built_runs}", file=sys.stderr)
    return {
        "build": build_s,
        "archive": archive_s,
        "size": archive.stat().st_size,
        "before": 4 * build_s + sum(built_runs),
        "after": build_s + archive_s + sum(archived_runs),
        "shards": archived_runs,
        "works": works,
    }


def build_cargo_prun():
    out = subprocess.run(["cargo", "build", "--release", "-p", "cargo-prun"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building cargo-prun failed:\n{out.stderr[-4000:]}")


if __name__ == "__main__":
    main()
