//! Process accounting from /proc: CPU time (to tell whether the broker or the
//! client was the busy one during a run) and peak/current resident memory.

use anyhow::{Context, Result};

/// Clock ticks per second of /proc/PID/stat times. Linux reports them in
/// USER_HZ, which is 100 on every architecture's user ABI.
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds used so far by `pid` (this process when `None`).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    parse_stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in seconds.
fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// (VmHWM, VmRSS) in KiB of `pid`, from /proc/PID/status.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no {key} in {path}"))
    };
    Ok((get("VmHWM")?, get("VmRSS")?))
}

/// Disk space in bytes allocated to the regular files under `dir` (recursively),
/// like `du`: a sparse or preallocated file counts for the blocks it really uses.
pub fn dir_size(dir: &std::path::Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// CPU use of this process and, optionally, the broker's over one run.
pub struct CpuMeter {
    broker: Option<u32>,
    start: std::time::Instant,
    client0: Option<f64>,
    broker0: Option<f64>,
}

impl CpuMeter {
    pub fn start(broker: Option<u32>) -> Self {
        Self {
            broker,
            start: std::time::Instant::now(),
            client0: cpu_seconds(None),
            broker0: broker.and_then(|p| cpu_seconds(Some(p))),
        }
    }

    /// (client cores, broker cores) used on average since `start`: CPU seconds ÷ wall seconds.
    pub fn finish(&self) -> (Option<f64>, Option<f64>) {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let client = self
            .client0
            .zip(cpu_seconds(None))
            .map(|(a, b)| (b - a) / wall);
        let broker = self
            .broker0
            .zip(self.broker.and_then(|p| cpu_seconds(Some(p))))
            .map(|(a, b)| (b - a) / wall);
        (client, broker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat =
            "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let meter = CpuMeter::start(Some(std::process::id()));
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (client, broker) = meter.finish();
        assert!(client.unwrap() > 0.05, "{client:?}");
        assert!(broker.unwrap() > 0.05, "{broker:?}");
        let (hwm, rss) = memory_kib(std::process::id()).unwrap();
        assert!(hwm >= rss && rss > 0);
    }
}
