//! The `machine` workload: this machine's own limits, measured in the same run
//! as the broker so that broker figures can be given as ratios to them.
//!
//! * Sequential durable write bandwidth of the data disk: append `chunk` bytes
//!   (1 MiB by default) to a new file and `fdatasync` after every chunk, until
//!   `disk_bytes` are written (or the time cap passes). This is the ceiling for
//!   a broker that makes every acknowledged byte durable before answering.
//! * Small synchronous appends: append 4 KiB and `fdatasync`, repeatedly for a
//!   few seconds; ops/s and latency percentiles. This is the floor of one
//!   durable commit.
//! * Loopback TCP: one std socket pair over 127.0.0.1, one thread writing 256 KiB
//!   buffers and one reading them, for a few seconds. The ceiling of what a
//!   broker can move to or from a client on this machine.
//!
//! Plus the machine description: nproc, CPU model, memory, kernel, and the
//! device and file system holding the data directory.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::stats::{new_histogram, LatencySummary, MB};

/// What the `machine` workload measures and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineParams {
    /// Directory on the data disk (the broker's data directory's file system).
    pub dir: PathBuf,
    /// Bytes written by the sequential fsync'd test.
    pub disk_bytes: u64,
    /// Chunk size of the sequential test (one fdatasync per chunk).
    pub chunk_bytes: usize,
    /// Upper bound on the sequential test's duration.
    pub disk_max_secs: f64,
    /// Duration of the 4 KiB write + fdatasync test.
    pub small_secs: f64,
    /// Duration of the loopback TCP test.
    pub tcp_secs: f64,
}

/// Description of the machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineInfo {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub data_dir: String,
    /// Block device (or source) of the file system holding the data dir.
    pub disk_device: String,
    pub disk_fs: String,
    /// `Some(true)` for a spinning disk, from /sys/block/*/queue/rotational.
    pub disk_rotational: Option<bool>,
}

/// Result of the sequential fsync'd write test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskSeq {
    pub chunk_bytes: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

/// Result of the small synchronous append test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskSmallSync {
    pub write_bytes: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub latency: Option<LatencySummary>,
}

/// Result of the loopback TCP test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loopback {
    pub buffer_bytes: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

/// Everything the `machine` workload reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineReport {
    pub info: MachineInfo,
    pub disk_seq: DiskSeq,
    pub disk_small_sync: DiskSmallSync,
    pub loopback_tcp: Loopback,
}

impl MachineReport {
    /// (metric, value) rows for a Markdown table.
    pub fn rows(&self) -> Vec<(String, String)> {
        let i = &self.info;
        let mut rows = vec![
            ("CPU".into(), format!("{} × {}", i.nproc, i.cpu_model)),
            (
                "memory".into(),
                format!("{:.1} GiB", i.mem_total_mib as f64 / 1024.0),
            ),
            ("kernel".into(), i.kernel.clone()),
            (
                "data disk".into(),
                format!(
                    "{} ({}{}) at {}",
                    i.disk_device,
                    i.disk_fs,
                    match i.disk_rotational {
                        Some(true) => ", rotational",
                        Some(false) => ", non-rotational",
                        None => "",
                    },
                    i.data_dir
                ),
            ),
        ];
        let d = &self.disk_seq;
        rows.push((
            format!(
                "disk: sequential {} KiB writes + fdatasync each",
                d.chunk_bytes / 1024
            ),
            format!(
                "{:.1} MB/s ({} MB in {:.2} s)",
                d.mb_per_s,
                d.bytes / 1_000_000,
                d.seconds
            ),
        ));
        let s = &self.disk_small_sync;
        let lat = s
            .latency
            .map(|l| {
                format!(
                    ", latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    l.p50_ms, l.p99_ms, l.max_ms
                )
            })
            .unwrap_or_default();
        rows.push((
            format!("disk: {} B append + fdatasync", s.write_bytes),
            format!("{:.0} ops/s{lat}", s.ops_per_s),
        ));
        let t = &self.loopback_tcp;
        rows.push((
            "loopback TCP, one stream".into(),
            format!("{:.0} MB/s ({:.2} s)", t.mb_per_s, t.seconds),
        ));
        rows
    }
}

/// Runs the three measurements and describes the machine.
pub fn run(p: &MachineParams, progress: &ProgressBar) -> Result<MachineReport> {
    std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
    let info = describe(&p.dir);
    progress.set_message("disk: sequential writes + fdatasync");
    let disk_seq = disk_sequential(&p.dir, p.chunk_bytes, p.disk_bytes, p.disk_max_secs)?;
    progress.set_message("disk: 4 KiB appends + fdatasync");
    let disk_small_sync = disk_small_sync(&p.dir, 4096, p.small_secs)?;
    progress.set_message("loopback TCP");
    let loopback_tcp = loopback_tcp(256 * 1024, p.tcp_secs)?;
    Ok(MachineReport {
        info,
        disk_seq,
        disk_small_sync,
        loopback_tcp,
    })
}

/// A scratch file in `dir` that is removed when dropped.
struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    fn create(dir: &Path, what: &str) -> Result<Self> {
        let path = dir.join(format!(".phxq-bench-{what}-{}.tmp", std::process::id()));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, file })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Appends `chunk`-byte writes to a new file with an fdatasync after each,
/// until `total` bytes or `max_secs` seconds.
pub fn disk_sequential(dir: &Path, chunk: usize, total: u64, max_secs: f64) -> Result<DiskSeq> {
    let mut s = Scratch::create(dir, "seq")?;
    let buf = crate::kafka::payload(chunk, 42);
    let start = Instant::now();
    let cap = Duration::from_secs_f64(max_secs);
    let mut written = 0u64;
    while written < total && start.elapsed() < cap {
        s.file.write_all(&buf)?;
        s.file.sync_data()?;
        written += chunk as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(DiskSeq {
        chunk_bytes: chunk,
        bytes: written,
        seconds,
        mb_per_s: written as f64 / MB / seconds,
    })
}

/// Appends `size`-byte writes with an fdatasync after each for `secs` seconds.
pub fn disk_small_sync(dir: &Path, size: usize, secs: f64) -> Result<DiskSmallSync> {
    let mut s = Scratch::create(dir, "small")?;
    let buf = crate::kafka::payload(size, 43);
    let mut h = new_histogram();
    let start = Instant::now();
    let cap = Duration::from_secs_f64(secs);
    let mut ops = 0u64;
    while start.elapsed() < cap {
        let t = Instant::now();
        s.file.write_all(&buf)?;
        s.file.sync_data()?;
        h.saturating_record(t.elapsed().as_micros() as u64);
        ops += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(DiskSmallSync {
        write_bytes: size,
        ops,
        seconds,
        ops_per_s: ops as f64 / seconds,
        latency: LatencySummary::from_histogram(&h),
    })
}

/// Streams `buffer`-byte writes over one loopback TCP connection for `secs` seconds.
pub fn loopback_tcp(buffer: usize, secs: f64) -> Result<Loopback> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding loopback listener")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; buffer];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        Ok((total, first.map(|f| f.elapsed()).unwrap_or_default()))
    });
    let mut conn = TcpStream::connect(addr).context("connecting loopback")?;
    let buf = crate::kafka::payload(buffer, 44);
    let start = Instant::now();
    let cap = Duration::from_secs_f64(secs);
    while start.elapsed() < cap {
        conn.write_all(&buf)?;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    drop(conn);
    let (bytes, took) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("loopback reader panicked"))??;
    let seconds = took.as_secs_f64().max(1e-9);
    Ok(Loopback {
        buffer_bytes: buffer,
        bytes,
        seconds,
        mb_per_s: bytes as f64 / MB / seconds,
    })
}

/// Describes this machine and the file system holding `dir`, from /proc and /sys.
pub fn describe(dir: &Path) -> MachineInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Model") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_total_mib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (disk_device, disk_fs) = mount_of(&read("/proc/self/mountinfo"), &canonical)
        .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
    let disk_rotational = disk_device
        .strip_prefix("/dev/")
        .and_then(|dev| {
            // /dev/vda1 -> vda, /dev/nvme0n1p2 -> nvme0n1: try the name, then shorter prefixes.
            (1..=dev.len()).rev().map(|n| &dev[..n]).find_map(|d| {
                std::fs::read_to_string(format!("/sys/block/{d}/queue/rotational")).ok()
            })
        })
        .map(|s| s.trim() == "1");
    MachineInfo {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        mem_total_mib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        data_dir: canonical.display().to_string(),
        disk_device,
        disk_fs,
        disk_rotational,
    }
}

/// The (source, fs type) of the mount in a /proc/self/mountinfo text whose
/// mount point is the longest prefix of `path`.
fn mount_of(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split_whitespace().nth(4)?;
            let mut post = post.split_whitespace();
            let fs = post.next()?.to_string();
            let source = post.next()?.to_string();
            path.starts_with(mount_point)
                .then_some((mount_point.len(), (source, fs)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_longest_prefix_wins() {
        let mi = "22 1 252:0 / / rw,relatime - ext4 /dev/vda rw\n\
                  30 22 0:40 / /tmp rw - tmpfs tmpfs rw\n\
                  31 22 0:41 / /tmpx rw - xfs /dev/sdb rw\n";
        assert_eq!(
            mount_of(mi, Path::new("/tmp/data")),
            Some(("tmpfs".into(), "tmpfs".into()))
        );
        assert_eq!(
            mount_of(mi, Path::new("/work/x")),
            Some(("/dev/vda".into(), "ext4".into()))
        );
    }

    #[test]
    fn small_quick_measurements_work() {
        let dir = std::env::temp_dir().join(format!("phxq-bench-machine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seq = disk_sequential(&dir, 64 * 1024, 1024 * 1024, 5.0).unwrap();
        assert_eq!(seq.bytes, 1024 * 1024);
        assert!(seq.mb_per_s > 0.0);
        let small = disk_small_sync(&dir, 4096, 0.1).unwrap();
        assert!(small.ops > 0 && small.latency.is_some());
        let tcp = loopback_tcp(64 * 1024, 0.2).unwrap();
        assert!(tcp.bytes > 0 && tcp.mb_per_s > 0.0);
        // Scratch files are removed.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
        let info = describe(Path::new("/"));
        assert!(info.nproc >= 1);
        let report = MachineReport {
            info,
            disk_seq: seq,
            disk_small_sync: small,
            loopback_tcp: tcp,
        };
        assert_eq!(report.rows().len(), 7);
    }
}
