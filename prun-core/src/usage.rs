//! What a test used: CPU time and peak memory, read from Linux at the test's edges.
//!
//! A process that runs one test at a time (a worker, a libtest batch) is measured across each
//! test: the CPU time its threads (its CPU-time clock) and the children it waited for (`/proc`)
//! used since the last edge, and its peak resident memory since then (the kernel's high-water
//! mark, reset at each edge). Elsewhere nothing is measured, and the scheduler treats tests as
//! unknown.

use serde::{Deserialize, Serialize};

/// What one attempt used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// User and system CPU time, of every thread and of the children it waited for.
    pub cpu_ms: u64,
    /// Peak resident memory, in KiB.
    pub peak_kb: u64,
}

/// Measures one process across the tests it runs, one lap per test.
#[derive(Debug)]
pub struct Meter {
    /// `None`: this process.
    pid: Option<u32>,
    /// CPU time it had used at the last edge, in microseconds.
    used_us: u64,
}

/// Linux's `USER_HZ`, the unit of `/proc/PID/stat`'s times: 100 on every architecture Rust
/// supports Linux on.
const TICKS_PER_SECOND: u64 = 100;

impl Meter {
    /// Measures this process from now.
    pub fn of_self() -> Meter {
        Meter::start(None)
    }

    /// Measures process `pid` from now.
    pub fn of(pid: u32) -> Meter {
        Meter::start(Some(pid))
    }

    fn start(pid: Option<u32>) -> Meter {
        let mut meter = Meter { pid, used_us: 0 };
        meter.used_us = meter.read_cpu_us().unwrap_or(0);
        meter.reset_peak();
        meter
    }

    /// What the process used since the last lap (or since the meter started); the next lap
    /// starts now. `None` where `/proc` cannot tell (another OS, the process is gone).
    pub fn lap(&mut self) -> Option<Usage> {
        let used_us = self.read_cpu_us()?;
        let peak_kb = self.read_peak_kb();
        self.reset_peak();
        let cpu_ms = used_us.saturating_sub(self.used_us) / 1000;
        // What was under a millisecond stays with the next lap.
        self.used_us += cpu_ms * 1000;
        Some(Usage { cpu_ms, peak_kb: peak_kb.unwrap_or(0) })
    }

    /// CPU time the process had used at the last lap (or when the meter started).
    pub fn measured_ms(&self) -> u64 {
        self.used_us / 1000
    }

    fn path(&self, file: &str) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}/{file}"),
            None => format!("/proc/self/{file}"),
        }
    }

    /// Its threads' CPU time, those that ended too, and its waited-for children's.
    fn read_cpu_us(&self) -> Option<u64> {
        Some(cpu_clock_us(self.pid)? + self.children_us()?)
    }

    /// The children it waited for: `/proc/PID/stat`'s `cutime` and `cstime`, in ticks (no clock
    /// counts them finer for another process; a child's time counts once it is reaped).
    fn children_us(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(self.path("stat")).ok()?;
        Some(children_ticks(&stat)? * (1_000_000 / TICKS_PER_SECOND))
    }

    fn read_peak_kb(&self) -> Option<u64> {
        peak_kb(&std::fs::read_to_string(self.path("status")).ok()?)
    }

    /// Resets the process's peak memory to what it holds now (`clear_refs` 5), so the next
    /// lap's peak is its own.
    fn reset_peak(&self) {
        let _ = std::fs::write(self.path("clear_refs"), "5");
    }
}

/// The CPU time of every thread of process `pid` (`None`: this one), those that ended too, in
/// microseconds: its CPU-time clock, which counts nanoseconds. `/proc/PID/stat` has the same
/// sum in 10 ms ticks, too coarse for a test of a few milliseconds: one that crossed a tick
/// seemed to use ten cores, and the tests beside it none.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "libc's clock_getcpuclockid and clock_gettime have no safe wrapper")]
fn cpu_clock_us(pid: Option<u32>) -> Option<u64> {
    let clock = match pid {
        None => libc::CLOCK_PROCESS_CPUTIME_ID,
        Some(pid) => {
            let pid = libc::pid_t::try_from(pid).ok()?;
            let mut clock: libc::clockid_t = 0;
            // SAFETY: `clock` is a live local the call writes a clock id to.
            if unsafe { libc::clock_getcpuclockid(pid, &raw mut clock) } != 0 {
                return None;
            }
            clock
        }
    };
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a live local the call writes the time to.
    if unsafe { libc::clock_gettime(clock, &raw mut now) } != 0 {
        return None;
    }
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(seconds * 1_000_000 + nanos / 1000)
}

/// Elsewhere there is no `/proc` to read the rest from either: nothing is measured.
#[cfg(not(target_os = "linux"))]
fn cpu_clock_us(_pid: Option<u32>) -> Option<u64> {
    None
}

/// cutime + cstime from a `/proc/PID/stat` line. The command name (field 2) may hold spaces
/// and parentheses: the fields are counted from its last `)`.
fn children_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: state is field 3, so field N is at N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (13..=14).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

/// `VmHWM` of `/proc/PID/status`, in KiB.
fn peak_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's CPU, as `/proc/stat` counts it: for the scheduler's live signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent idle (idle + iowait) and in all.
    pub idle: u64,
    pub total: u64,
    /// Threads runnable right now (`procs_running`).
    pub runnable: u64,
}

impl CpuTimes {
    /// Now, or `None` without `/proc/stat`.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let cpu = stat.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> =
            cpu.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest times are already in user).
        let total = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        let runnable = stat
            .lines()
            .find_map(|line| line.strip_prefix("procs_running "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Some(CpuTimes { idle, total, runnable })
    }

    /// Cores idle between `earlier` and `self`, in thousandths of a core, on a machine of
    /// `cores`.
    pub fn idle_millicores_since(&self, earlier: &CpuTimes, cores: u32) -> u32 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0;
        }
        let idle = self.idle.saturating_sub(earlier.idle).min(total);
        u32::try_from(idle * u64::from(cores) * 1000 / total).unwrap_or(u32::MAX)
    }
}

/// Memory available to start new work (`MemAvailable`), in KiB.
pub fn available_memory_kb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_an_odd_command_name_is_read_from_its_last_parenthesis() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 5 0 0";
        // cutime and cstime: the children it waited for.
        assert_eq!(children_ticks(stat), Some(2 + 1));
    }

    #[test]
    fn the_peak_is_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t 9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(peak_kb(status), Some(1234));
    }

    #[test]
    fn idle_cores_come_from_the_difference_of_two_readings() {
        let earlier = CpuTimes::parse("cpu  100 0 100 800 0 0 0 0 0 0\nprocs_running 3\n").unwrap();
        assert_eq!(earlier.runnable, 3);
        // 200 ticks passed, 150 of them idle (100 idle + 50 iowait), on 2 cores.
        let later = CpuTimes::parse("cpu  125 0 125 900 50 0 0 0 0 0\n").unwrap();
        assert_eq!(later.idle_millicores_since(&earlier, 2), 1500);
        assert_eq!(earlier.idle_millicores_since(&earlier, 2), 0);
    }

    /// This thread's CPU time, in microseconds.
    #[expect(unsafe_code, reason = "clock_gettime has no safe wrapper")]
    fn thread_cpu_us() -> u64 {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a live local the call writes the time to.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) }, 0);
        now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
    }

    /// Busy on this thread for `ms` milliseconds of its CPU.
    fn burn(ms: u64) {
        let (start, mut x) = (thread_cpu_us(), 0u64);
        while thread_cpu_us() < start + ms * 1000 {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }

    #[test]
    fn this_process_is_measured_across_laps_of_a_few_milliseconds() {
        let mut meter = Meter::of_self();
        // Each lap holds at least 2 ms of this thread's CPU (other tests' threads may add more
        // to the process's). Counted in the 10 ms ticks of `/proc/PID/stat`, most such laps
        // read 0 ms and a few 10.
        for _ in 0..5 {
            burn(2);
            let usage = meter.lap().expect("Linux has the clock and /proc");
            assert!(usage.cpu_ms >= 2, "{usage:?}");
            assert!(usage.peak_kb > 0);
        }
        // The next lap starts where this one ended: nothing counted twice.
        assert!(meter.measured_ms() <= cpu_clock_us(None).unwrap() / 1000);
    }

    #[test]
    fn another_process_is_measured_by_its_pid() {
        let mut child =
            std::process::Command::new("sleep").arg("60").spawn().expect("sleep is on every Linux");
        let mut meter = Meter::of(child.id());
        // A process that sleeps uses (nearly) nothing, and has a peak of its own.
        let usage = meter.lap().expect("a live child is measured");
        assert!(usage.cpu_ms < 1000, "{usage:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        // Once reaped it is gone: nothing to read.
        assert_eq!(meter.lap(), None);
    }
}
