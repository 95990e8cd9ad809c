//! `phxq-bench summarize`: turns the run results of a suite (several
//! repetitions of each labelled run, plus `machine` and `rss` runs) into the
//! Markdown page docs/benchmarks.md: medians over the repetitions, each next
//! to the machine limit it is bounded by, with the ratio.
//!
//! Ratios (all medians):
//! * produce: payload MB/s ÷ disk MB/s of sequential 1 MiB writes with an
//!   fdatasync each (the durable-write ceiling);
//! * consume: payload MB/s ÷ loopback TCP MB/s (the client-transfer ceiling);
//! * e2e: latency p50 ÷ the p50 of one 4 KiB append + fdatasync (the floor of
//!   one durable commit). Shown as "× fsync".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::report::{escape, RunResult};
use crate::stats::median;

/// Inputs of the summary besides the result files.
#[derive(Debug, Clone, Default)]
pub struct SummaryOptions {
    /// Title of the page.
    pub title: String,
    /// Free-text lines placed under the title (how it was run, commit...).
    pub preamble: Vec<String>,
    /// Notes placed in the "Not measured / notes" section.
    pub notes: Vec<String>,
    /// Where to copy one representative plot per workload (None: link in place).
    pub plots_dir: Option<PathBuf>,
    /// The Markdown file being written (links are made relative to its folder).
    pub out: PathBuf,
}

/// Reads every `*.json` run result under `dir` (recursively), oldest first.
pub fn load_results(dir: &Path) -> Result<Vec<(PathBuf, RunResult)>> {
    let mut files = Vec::new();
    collect_json(dir, &mut files)?;
    let mut out = Vec::new();
    for f in files {
        match RunResult::read(&f) {
            Ok(r) => out.push((f, r)),
            Err(e) => eprintln!("skipping {}: {e:#}", f.display()),
        }
    }
    out.sort_by_key(|(_, r)| r.started_unix_ms);
    Ok(out)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Medians of the machine limits over the `machine` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub disk_mb_per_s: Option<f64>,
    pub fsync_p50_ms: Option<f64>,
    pub fsync_ops_per_s: Option<f64>,
    pub loopback_mb_per_s: Option<f64>,
}

fn limits(runs: &[&RunResult]) -> Limits {
    let ms: Vec<_> = runs.iter().filter_map(|r| r.machine.as_ref()).collect();
    let m = |f: &dyn Fn(&crate::machine::MachineReport) -> Option<f64>| {
        median(&ms.iter().filter_map(|x| f(x)).collect::<Vec<_>>())
    };
    Limits {
        disk_mb_per_s: m(&|x| Some(x.disk_seq.mb_per_s)),
        fsync_p50_ms: m(&|x| x.disk_small_sync.latency.map(|l| l.p50_ms)),
        fsync_ops_per_s: m(&|x| Some(x.disk_small_sync.ops_per_s)),
        loopback_mb_per_s: m(&|x| Some(x.loopback_tcp.mb_per_s)),
    }
}

/// One row of the results table: the medians of one label's repetitions.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub kind: String,
    pub description: String,
    pub runs: usize,
    pub ok_runs: usize,
    pub records_per_s: Option<f64>,
    pub mb_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// (ratio text, limit text), e.g. ("0.42", "disk 1 MiB+fdatasync 812 MB/s").
    pub ratio: Option<(String, String)>,
    /// Median average CPU cores used by the broker and by the client during the run.
    pub broker_cpu: Option<f64>,
    pub client_cpu: Option<f64>,
    /// For `rss` runs: median VmHWM in MiB.
    pub rss_mib: Option<f64>,
    /// For `rss` runs: median size of the broker's data directory in MiB.
    pub data_dir_mib: Option<f64>,
    /// The representative (median) run's plot, if any.
    pub plot: Option<PathBuf>,
    pub problems: Vec<String>,
}

fn describe(r: &RunResult) -> String {
    let p = &r.params;
    let g = |k: &str| {
        p.get(k)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .filter(|s| s != "null")
    };
    let opt = |k: &str, name: &str| g(k).map(|v| format!(", {name}={v}")).unwrap_or_default();
    let props: String = p
        .get("client_properties")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!(", {k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let base = match r.kind.as_str() {
        "produce" => format!(
            "produce {} B records, {} producer(s), {} partition(s), acks={}{}{}, compression={}{}",
            g("record_size").unwrap_or_default(),
            g("producers").unwrap_or_default(),
            g("partitions").unwrap_or_default(),
            g("acks").unwrap_or_default(),
            opt("linger_ms", "linger.ms"),
            opt("batch_size", "batch.size"),
            g("compression").unwrap_or_default(),
            if g("idempotence").as_deref() == Some("true") { ", idempotent" } else { "" },
        ),
        "consume" => format!(
            "consume a topic from the beginning ({} partition(s), assign(), one consumer)",
            r.extra.get("partitions").map(|v| v.to_string()).unwrap_or_default()
        ),
        "e2e" => format!(
            "end-to-end latency at {} rec/s of {} B for {} s, client defaults (fetch.wait.max.ms=500, linger.ms=5) unless listed",
            g("rate").unwrap_or_default(),
            g("record_size").unwrap_or_default(),
            g("duration_secs").unwrap_or_default(),
        ),
        "rss" => "broker peak resident memory (VmHWM) after the workloads".into(),
        other => other.to_string(),
    };
    format!("{base}{props}")
}

/// Groups runs by label (in order of first appearance) and computes medians and ratios.
pub fn rows(results: &[(PathBuf, RunResult)], lim: &Limits) -> Vec<Row> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<(&PathBuf, &RunResult)>> = BTreeMap::new();
    for (path, r) in results {
        if r.kind == "machine" {
            continue;
        }
        if !groups.contains_key(&r.label) {
            order.push(r.label.clone());
        }
        groups.entry(r.label.clone()).or_default().push((path, r));
    }
    let mut rows: Vec<Row> = order
        .into_iter()
        .map(|label| {
            let runs = &groups[&label];
            let ok: Vec<&RunResult> = runs.iter().filter(|(_, r)| r.ok).map(|(_, r)| *r).collect();
            let first = runs[0].1;
            let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                median(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let mut row = Row {
                label: label.clone(),
                kind: first.kind.clone(),
                description: describe(first),
                runs: runs.len(),
                ok_runs: ok.len(),
                records_per_s: med(&|r| (r.records > 0).then_some(r.records_per_s)),
                mb_per_s: med(&|r| (r.bytes > 0).then_some(r.mb_per_s)),
                p50_ms: med(&|r| r.latency.map(|l| l.p50_ms)),
                p99_ms: med(&|r| r.latency.map(|l| l.p99_ms)),
                p999_ms: med(&|r| r.latency.map(|l| l.p999_ms)),
                max_ms: med(&|r| r.latency.map(|l| l.max_ms)),
                ratio: None,
                broker_cpu: med(&|r| r.extra.get("broker_cpu_cores").and_then(|v| v.as_f64())),
                client_cpu: med(&|r| r.extra.get("client_cpu_cores").and_then(|v| v.as_f64())),
                rss_mib: med(&|r| {
                    r.extra
                        .get("vmhwm_kib")
                        .and_then(|v| v.as_f64())
                        .map(|k| k / 1024.0)
                }),
                data_dir_mib: med(&|r| {
                    r.extra
                        .get("data_dir_kib")
                        .and_then(|v| v.as_f64())
                        .map(|k| k / 1024.0)
                }),
                plot: None,
                problems: Vec::new(),
            };
            row.ratio = match first.kind.as_str() {
                "produce" => row.mb_per_s.zip(lim.disk_mb_per_s).map(|(v, l)| {
                    (
                        format!("{:.2}", v / l),
                        format!("disk, 1 MiB writes + fdatasync: {l:.0} MB/s"),
                    )
                }),
                "consume" => row.mb_per_s.zip(lim.loopback_mb_per_s).map(|(v, l)| {
                    (
                        format!("{:.3}", v / l),
                        format!("loopback TCP: {l:.0} MB/s"),
                    )
                }),
                "e2e" => row.p50_ms.zip(lim.fsync_p50_ms).map(|(v, l)| {
                    (
                        format!("{:.0} × fsync", v / l),
                        format!("4 KiB append + fdatasync p50: {l:.3} ms"),
                    )
                }),
                _ => None,
            };
            // The representative run: median throughput (produce/consume) or median p99 (e2e).
            let key = |r: &RunResult| match r.kind.as_str() {
                "e2e" => r.latency.map(|l| l.p99_ms).unwrap_or(f64::MAX),
                _ => r.mb_per_s,
            };
            let mut with_plot: Vec<_> = runs
                .iter()
                .filter(|(_, r)| r.ok && !r.timeline.is_empty())
                .collect();
            with_plot.sort_by(|a, b| key(a.1).total_cmp(&key(b.1)));
            if let Some((path, _)) = with_plot.get(with_plot.len() / 2) {
                let svg = path.with_extension("svg");
                if svg.exists() {
                    row.plot = Some(svg);
                }
            }
            for (path, r) in runs.iter().filter(|(_, r)| !r.ok) {
                row.problems.push(format!(
                    "{} ({}): {}",
                    r.label,
                    path.file_name()
                        .map(|f| f.to_string_lossy().to_string())
                        .unwrap_or_default(),
                    r.errors.join("; ")
                ));
            }
            row
        })
        .collect();
    cluster_ratios(&mut rows, lim.disk_mb_per_s);
    rows
}

/// Rows of the three-node cluster (label suffix `-3n`) are compared with the same workload
/// on a single node in the same suite run. The three replicas share this machine's one
/// disk, so the limit column also says what share of the disk their three copies used.
fn cluster_ratios(rows: &mut [Row], disk_mb_per_s: Option<f64>) {
    let single: BTreeMap<String, f64> = rows
        .iter()
        .filter_map(|r| r.mb_per_s.map(|v| (r.label.clone(), v)))
        .collect();
    for row in rows.iter_mut() {
        let Some(base) = row.label.strip_suffix("-3n") else {
            continue;
        };
        if let (Some(v), Some(b)) = (row.mb_per_s, single.get(base)) {
            let disk = disk_mb_per_s.map_or(String::new(), |d| {
                format!(
                    "; its 3 replicas wrote {:.0} MB/s = {:.2} of the one disk",
                    3.0 * v,
                    3.0 * v / d
                )
            });
            row.ratio = Some((
                format!("{:.2} × single node", v / b),
                format!("{base} on one node, same run: {b:.0} MB/s{disk}"),
            ));
        }
    }
}

/// The fixed part of the page: what each workload does and what the ratios mean.
const HOW: &str = "\
- **produce**: `phxq-bench produce` creates the topic (CreateTopics), then each producer thread \
  (one librdkafka producer each) sends records of random bytes, no key, as fast as librdkafka \
  accepts them, until the record count or the time cap. Only successful delivery reports count; \
  throughput is over first send -> last delivery report. Latency is send -> delivery report, so it \
  includes linger.ms (librdkafka default 5 ms) and batching. Any failed delivery fails the run.
- **consume**: `phxq-bench consume` assign()s every partition of the topic the 100 B produce run \
  wrote, from the beginning (no group is joined and nothing committed: enable.auto.commit=false, \
  a throwaway group.id because librdkafka's assign() requires one; librdkafka defaults otherwise), \
  reads up to the high watermarks taken at start, and checks that offsets are dense and that the \
  count equals what the producer had acknowledged. Throughput is over first -> last record read. \
  The suite sets fetch.queue.backoff.ms=10: with librdkafka 2.x's default (1000) the consumer stops \
  fetching for a second whenever it holds more than queued.min.messages (100000) records, which \
  100 B records from a fast broker trigger several times a second.
- **e2e**: one producer sends 1000 records/s (evenly paced, 100 B, sequence number and send time \
  in the payload) while one consumer in the same process reads with assign(); latency is \
  receive time - send time on the same clock. Both clients use librdkafka defaults \
  (fetch.wait.max.ms=500, linger.ms=5, acks=all): what a user with default settings sees. \
  Records of the first seconds (warm-up) are received but left out of the percentiles.
- **machine limits**: `phxq-bench machine` in the broker's data directory, in the same repetition: \
  sequential 1 MiB writes with an fdatasync after each (durable write bandwidth), 4 KiB append + \
  fdatasync (the cost of one durable commit), and one loopback TCP stream (std sockets, 256 KiB \
  writes).
- **ratios**: produce MB/s ÷ durable disk MB/s (an acks=all produce is durable before it is \
  acknowledged, so the disk bounds it); consume MB/s ÷ loopback TCP MB/s; e2e p50 ÷ the p50 of one \
  4 KiB fdatasync.
- **CPU cores**: CPU seconds (user + system, /proc/PID/stat) the broker and the benchmark client \
  used during the run, divided by its wall time; the machine has `nproc` cores in all.
- **broker RSS**: VmHWM (peak resident set) from /proc/PID/status after the workloads of a repetition.
";

/// How to reproduce the page and run single workloads.
const RUN: &str = "\
To reproduce: `compat-tests/bench/run-suite.sh` (3 repetitions, under 10 minutes after the build; \
`--quick` for a one-minute smoke run that leaves this page alone). Single runs: \
`target/release/phxq-bench --bootstrap HOST:PORT produce|consume|e2e|machine --help`; each run \
writes `<label>-<unix ms>.json`, `.md` and `.svg` into `--out-dir` (default `bench-results/`).
";

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

/// Renders the page.
pub fn render(results: &[(PathBuf, RunResult)], opts: &SummaryOptions) -> Result<String> {
    let machine_runs: Vec<&RunResult> = results
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.kind == "machine" && r.ok)
        .collect();
    let lim = limits(&machine_runs);
    let mut rows = rows(results, &lim);
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", opts.title);
    for line in &opts.preamble {
        let _ = writeln!(s, "{line}\n");
    }

    let _ = writeln!(s, "## Machine\n");
    if let Some(m) = machine_runs.last().and_then(|r| r.machine.as_ref()) {
        let i = &m.info;
        let _ = writeln!(s, "| | |\n| --- | --- |");
        let _ = writeln!(s, "| CPU | {} × {} |", i.nproc, escape(&i.cpu_model));
        let _ = writeln!(s, "| memory | {:.1} GiB |", i.mem_total_mib as f64 / 1024.0);
        let _ = writeln!(s, "| kernel | {} |", escape(&i.kernel));
        let _ = writeln!(
            s,
            "| data disk | {} ({}{}), data dir {} |",
            escape(&i.disk_device),
            escape(&i.disk_fs),
            match i.disk_rotational {
                Some(true) => ", rotational",
                Some(false) => ", non-rotational",
                None => "",
            },
            escape(&i.data_dir)
        );
        let _ = writeln!(
            s,
            "\nMachine limits, measured in the same run (median of {} measurements):\n",
            machine_runs.len()
        );
        let _ = writeln!(s, "| limit | median |\n| --- | --- |");
        let _ = writeln!(
            s,
            "| disk: sequential 1 MiB writes, fdatasync after each | {} MB/s |",
            fmt_opt(lim.disk_mb_per_s, 0)
        );
        let _ = writeln!(
            s,
            "| disk: 4 KiB append + fdatasync | {} ops/s, p50 {} ms |",
            fmt_opt(lim.fsync_ops_per_s, 0),
            fmt_opt(lim.fsync_p50_ms, 3)
        );
        let _ = writeln!(
            s,
            "| loopback TCP, one stream | {} MB/s |",
            fmt_opt(lim.loopback_mb_per_s, 0)
        );
    } else {
        let _ = writeln!(
            s,
            "No successful `machine` run in these results: no limits, no ratios."
        );
    }

    let _ = writeln!(s, "\n## Results\n");
    let _ = writeln!(
        s,
        "Medians over the successful repetitions. MB = 10^6 bytes of record payload (values only). \
         Latency: produce = send -> delivery report; e2e = send -> received by the consumer.\n"
    );
    let _ = writeln!(
        s,
        "| run | workload | ok runs | records/s | MB/s | latency p50 / p99 / p99.9 / max (ms) | ratio to machine limit | limit | CPU cores: broker / client |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows.iter().filter(|r| r.kind != "rss") {
        let lat = if r.p50_ms.is_some() {
            format!(
                "{} / {} / {} / {}",
                fmt_opt(r.p50_ms, 2),
                fmt_opt(r.p99_ms, 2),
                fmt_opt(r.p999_ms, 2),
                fmt_opt(r.max_ms, 1)
            )
        } else {
            "—".into()
        };
        let (ratio, limit) = r.ratio.clone().unwrap_or_else(|| ("—".into(), "—".into()));
        let _ = writeln!(
            s,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} / {} |",
            escape(&r.label),
            escape(&r.description),
            r.ok_runs,
            r.runs,
            fmt_opt(r.records_per_s, 0),
            fmt_opt(r.mb_per_s, 1),
            lat,
            ratio,
            escape(&limit),
            fmt_opt(r.broker_cpu, 2),
            fmt_opt(r.client_cpu, 2)
        );
    }
    for r in rows.iter().filter(|r| r.kind == "rss") {
        let data = r
            .data_dir_mib
            .map(|d| format!(" Its data directory then used {d:.0} MiB of disk."))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nBroker peak RSS (VmHWM from /proc/PID/status after the workloads, median of {}): **{} MiB**.{data}",
            r.ok_runs,
            fmt_opt(r.rss_mib, 1)
        );
    }

    // Plots: copy the representative run's SVG next to the page.
    let page_dir = opts.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut plot_lines = Vec::new();
    for r in rows.iter_mut() {
        let Some(src) = r.plot.clone() else { continue };
        let shown = match &opts.plots_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let name = format!(
                    "{}.svg",
                    r.label
                        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                );
                let dst = dir.join(name);
                std::fs::copy(&src, &dst)
                    .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
                dst
            }
            None => src,
        };
        let link = relative_to(&shown, &page_dir);
        plot_lines.push(format!(
            "### {}\n\n![{}]({})\n",
            escape(&r.label),
            escape(&r.label),
            link
        ));
    }
    if !plot_lines.is_empty() {
        let _ = writeln!(
            s,
            "\n## Plots\n\nThroughput and latency percentiles per second of the median repetition of each run.\n"
        );
        for l in plot_lines {
            let _ = writeln!(s, "{l}");
        }
    }

    let _ = writeln!(s, "\n## How it is measured\n\n{HOW}");
    let _ = writeln!(s, "{RUN}");
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let _ = writeln!(
        s,
        "Client library: librdkafka {version} (bundled by the rdkafka crate)."
    );

    let problems: Vec<&String> = rows.iter().flat_map(|r| &r.problems).collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for p in problems {
            let _ = writeln!(s, "- {}", escape(p));
        }
    }
    if !opts.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &opts.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    Ok(s)
}

/// `path` relative to `base` when it is below it, else `path` as given.
fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    p.strip_prefix(&b)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// Reads the results under `dir`, renders the page and writes it to `opts.out`.
pub fn summarize(dir: &Path, opts: &SummaryOptions) -> Result<()> {
    let results = load_results(dir)?;
    if results.is_empty() {
        bail!("no run results (*.json) under {}", dir.display());
    }
    let page = render(&results, opts)?;
    if let Some(parent) = opts.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&opts.out, page).with_context(|| format!("writing {}", opts.out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{DiskSeq, DiskSmallSync, Loopback, MachineInfo, MachineReport};
    use crate::report::tests::synthetic;
    use crate::stats::LatencySummary;

    fn machine_run(disk: f64) -> RunResult {
        let mut r = RunResult::new("machine", "machine", None, serde_json::Value::Null);
        r.machine = Some(MachineReport {
            info: MachineInfo {
                nproc: 2,
                cpu_model: "Test CPU".into(),
                mem_total_mib: 24 * 1024,
                kernel: "6.1".into(),
                data_dir: "/tmp".into(),
                disk_device: "/dev/vda".into(),
                disk_fs: "ext4".into(),
                disk_rotational: Some(false),
            },
            disk_seq: DiskSeq {
                chunk_bytes: 1 << 20,
                bytes: 1 << 30,
                seconds: 1.0,
                mb_per_s: disk,
            },
            disk_small_sync: DiskSmallSync {
                write_bytes: 4096,
                ops: 1000,
                seconds: 1.0,
                ops_per_s: 1000.0,
                latency: Some(LatencySummary {
                    count: 1000,
                    mean_ms: 0.2,
                    p50_ms: 0.2,
                    p90_ms: 0.3,
                    p99_ms: 1.0,
                    p999_ms: 2.0,
                    max_ms: 3.0,
                }),
            },
            loopback_tcp: Loopback {
                buffer_bytes: 1 << 18,
                bytes: 1 << 32,
                seconds: 1.0,
                mb_per_s: 3500.0,
            },
        });
        r
    }

    #[test]
    fn medians_ratios_and_failures() {
        let dir = std::env::temp_dir().join(format!("phxq-bench-summary-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut results = Vec::new();
        for (i, (mb, disk)) in [(100.0, 800.0), (300.0, 1000.0), (200.0, 1200.0)]
            .iter()
            .enumerate()
        {
            let mut m = machine_run(*disk);
            m.started_unix_ms = i as u64 * 10;
            let mut p = synthetic("produce-1k", *mb, 5.0 + i as f64);
            p.started_unix_ms = i as u64 * 10 + 1;
            p.extra
                .insert("broker_cpu_cores".into(), serde_json::json!(0.5 + i as f64));
            let rep = dir.join(format!("rep{i}"));
            m.write(&rep).unwrap();
            p.write(&rep).unwrap();
            results.push(m);
            results.push(p);
        }
        let mut bad = synthetic("produce-1k", 1.0, 1.0);
        bad.started_unix_ms = 99;
        bad.fail("2 deliveries failed");
        bad.write(&dir.join("rep3")).unwrap();
        let mut rss = RunResult::new("rss", "broker-rss", None, serde_json::Value::Null);
        rss.extra
            .insert("vmhwm_kib".into(), serde_json::json!(102400));
        rss.started_unix_ms = 100;
        rss.write(&dir.join("rep3")).unwrap();

        let loaded = load_results(&dir).unwrap();
        assert_eq!(loaded.len(), 8);
        let out = dir.join("docs/benchmarks.md");
        let opts = SummaryOptions {
            title: "phxq benchmarks".into(),
            preamble: vec!["Generated by a test.".into()],
            notes: vec!["Three-node cluster: not measured.".into()],
            plots_dir: Some(dir.join("docs/benchmarks")),
            out: out.clone(),
        };
        summarize(&dir, &opts).unwrap();
        let page = std::fs::read_to_string(&out).unwrap();
        assert!(page.contains("| CPU | 2 × Test CPU |"), "{page}");
        assert!(
            page.contains("| disk: sequential 1 MiB writes, fdatasync after each | 1000 MB/s |"),
            "{page}"
        );
        // Median 200 MB/s over the three ok runs (the failed one is excluded), ratio 200/1000.
        assert!(page.contains("| produce-1k |"), "{page}");
        assert!(page.contains("| 3/4 |"), "{page}");
        assert!(page.contains("| 200.0 |"), "{page}");
        assert!(page.contains("| 0.20 |"), "{page}");
        assert!(page.contains("**100.0 MiB**"), "{page}");
        assert!(page.contains("| 1.50 / — |"), "{page}");
        assert!(page.contains("2 deliveries failed"), "{page}");
        assert!(
            page.contains("![produce-1k](benchmarks/produce-1k.svg)"),
            "{page}"
        );
        assert!(dir.join("docs/benchmarks/produce-1k.svg").exists());
        assert!(page.contains("Three-node cluster: not measured."));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
