//! What a result is measured on: the process's own memory, the machine, the
//! code (git commit) and the broker (Kafka version).
//!
//! Linux only: everything is read from `/proc`, which is where the figures the
//! goals are stated in (resident set size) come from.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Resident memory of this process, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now, in bytes.
    pub rss_bytes: u64,
    /// `VmHWM`: the peak resident set since start (or since the last
    /// [`reset_peak`]), in bytes.
    pub hwm_bytes: u64,
}

impl Memory {
    pub fn now() -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| anyhow::anyhow!("cannot read /proc/self/status: {e}"))?;
        Ok(Memory {
            rss_bytes: status_kib(&status, "VmRSS")? * 1024,
            hwm_bytes: status_kib(&status, "VmHWM")? * 1024,
        })
    }
}

/// A `/proc/*/status` or `/proc/meminfo` field given in kB (`Name:  123 kB`).
fn status_kib(text: &str, field: &str) -> anyhow::Result<u64> {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no `{field}` in /proc"))
}

/// Resets `VmHWM` to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux
/// 4.0+), so the peak of one phase is not the peak of an earlier one. Returns
/// whether the kernel accepted it; when not, the peaks reported are
/// cumulative since the process started.
/// Memory growth over `n` units (resources, keys) fed between two readings,
/// and the resident memory projected for `goal_n` units.
pub struct Growth {
    /// (VmRSS after − VmRSS before) / n.
    pub bytes_per_unit: f64,
    /// (VmHWM after − VmRSS before) / n.
    pub peak_bytes_per_unit: f64,
    /// Measured VmHWM when `n == goal_n`, else `before + peak × goal_n`.
    pub for_goal_bytes: f64,
    pub is_projection: bool,
}

impl Growth {
    pub fn of(before: &Memory, after: &Memory, n: u64, goal_n: u64) -> Growth {
        let per = |b: u64| b.saturating_sub(before.rss_bytes) as f64 / n.max(1) as f64;
        let peak_bytes_per_unit = per(after.hwm_bytes);
        let is_projection = n != goal_n;
        Growth {
            bytes_per_unit: per(after.rss_bytes),
            peak_bytes_per_unit,
            for_goal_bytes: if is_projection {
                before.rss_bytes as f64 + peak_bytes_per_unit * goal_n as f64
            } else {
                after.hwm_bytes as f64
            },
            is_projection,
        }
    }
}

pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// CPU time used so far by this process and by the whole machine, for the
/// share of the machine a run had: on a shared machine, other processes'
/// load shows as busy time that is neither ours nor the broker's.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuClock {
    process_ticks: u64,
    machine_busy_ticks: u64,
}

/// CPU use between two [`CpuClock`] readings, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    /// CPU time of this process (all its threads: stage, librdkafka).
    pub process_seconds: f64,
    /// CPU time of the whole machine (this process, the broker, anything else).
    pub machine_busy_seconds: f64,
    /// Wall time × CPUs: what the machine could have given.
    pub machine_capacity_seconds: f64,
}

/// Clock ticks per second of `/proc` times (`USER_HZ`), 100 on Linux.
const USER_HZ: f64 = 100.0;

impl CpuClock {
    pub fn now() -> CpuClock {
        // /proc/self/stat: the command name (field 2) may hold spaces, so
        // count fields after its closing parenthesis; utime and stime are
        // fields 14 and 15.
        let process_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        // /proc/stat `cpu` line: user nice system idle iowait irq softirq steal.
        let machine_busy_ticks = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("cpu "))?;
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = v.iter().sum();
                let idle = v.get(3)? + v.get(4)?;
                Some(total - idle)
            })
            .unwrap_or(0);
        CpuClock {
            process_ticks,
            machine_busy_ticks,
        }
    }

    /// CPU use from `self` to `later`, over `wall_seconds`.
    pub fn until(&self, later: &CpuClock, wall_seconds: f64) -> CpuUse {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        CpuUse {
            process_seconds: later.process_ticks.saturating_sub(self.process_ticks) as f64
                / USER_HZ,
            machine_busy_seconds: later
                .machine_busy_ticks
                .saturating_sub(self.machine_busy_ticks) as f64
                / USER_HZ,
            machine_capacity_seconds: wall_seconds * nproc as f64,
        }
    }
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_total_bytes: Option<u64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    /// Load averages when the result was written: other work on the machine
    /// makes figures of a 2-CPU machine noisy.
    pub loadavg: Option<[f64; 3]>,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            (name.trim() == "model name").then(|| value.trim().to_string())
        });
        let memory_total_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| status_kib(&m, "MemTotal").ok())
            .map(|kib| kib * 1024);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_total_bytes,
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            loadavg: loadavg(),
        }
    }
}

/// The code measured: `git rev-parse HEAD`, and whether the work tree had
/// uncommitted changes (a figure from a dirty tree is not reproducible from
/// the commit alone).
#[derive(Debug, Clone, Serialize)]
pub struct Code {
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
}

impl Code {
    pub fn probe() -> Code {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        Code {
            git_commit: git(&["rev-parse", "HEAD"]),
            // Results written by earlier runs do not make the code dirty.
            git_dirty: git(&["status", "--porcelain", "--", ".", ":!bench/results"])
                .map(|s| !s.is_empty()),
        }
    }
}

/// The Kafka version `scripts/kafka` runs: the single source of truth is
/// `<kafka.version>` in `scripts/kafka-pom.xml` of the repository the bench
/// runs from. An explicit value (`--kafka-version`) wins.
pub fn kafka_version(explicit: Option<&str>) -> Option<String> {
    if let Some(v) = explicit {
        return Some(v.to_string());
    }
    let root = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())?;
    let pom = std::fs::read_to_string(Path::new(&root).join("scripts/kafka-pom.xml")).ok()?;
    let start = pom.find("<kafka.version>")? + "<kafka.version>".len();
    let len = pom[start..].find("</kafka.version>")?;
    Some(pom[start..start + len].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields_of_proc_status() {
        let status = "Name:\tbench\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS").expect("rss"), 1024);
        assert_eq!(status_kib(status, "VmHWM").expect("hwm"), 2048);
        assert!(status_kib(status, "VmSwap").is_err());
    }

    #[test]
    fn cpu_time_moves_forward() {
        let a = CpuClock::now();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = a.until(&CpuClock::now(), 1.0);
        assert!(used.process_seconds > 0.0, "{used:?}");
        assert!(used.machine_busy_seconds >= 0.0);
        assert!(loadavg().is_some());
    }

    #[test]
    fn own_memory_is_readable_and_peak_is_at_least_current() {
        let m = Memory::now().expect("memory");
        assert!(m.rss_bytes > 0);
        assert!(m.hwm_bytes >= m.rss_bytes);
    }
}
