//! The result of one run (one JSON file per run), its Markdown table, and
//! writing both (plus the SVG plot) to the output directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::machine::MachineReport;
use crate::stats::{LatencySummary, Sample, MB};

/// Version of the JSON layout below; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One run of one workload, as written to `<out-dir>/<label>-<started>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: u32,
    /// `produce`, `consume`, `e2e` or `machine`.
    pub kind: String,
    /// The run's name (the suite uses it to group repetitions); defaults to `kind`.
    pub label: String,
    pub started_unix_ms: u64,
    pub bootstrap: Option<String>,
    /// The workload's parameters as given on the command line (after defaults).
    pub params: serde_json::Value,
    /// False when the run failed: a failed delivery, a count mismatch, a timeout...
    pub ok: bool,
    /// Why the run is not ok (empty when ok).
    pub errors: Vec<String>,
    /// Facts worth knowing that do not fail the run (e.g. stopped by --max-seconds).
    pub notes: Vec<String>,
    /// Wall time of the measured part: first send (or first poll) to last completion.
    pub duration_s: f64,
    /// Records completed: acknowledged (produce), read (consume), received (e2e).
    pub records: u64,
    /// Payload bytes of those records (values only; keys and headers are not counted).
    pub bytes: u64,
    pub records_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// produce: send -> delivery report; e2e: send -> receive by the consumer.
    pub latency: Option<LatencySummary>,
    /// Once-a-second samples of throughput and latency.
    pub timeline: Vec<Sample>,
    /// Workload-specific figures (e.g. e2e's lost/duplicate counts, produce acks latency).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The `machine` workload's measurements.
    #[serde(default)]
    pub machine: Option<MachineReport>,
}

impl RunResult {
    /// An empty, ok result for `kind`/`label` started now.
    pub fn new(
        kind: &str,
        label: &str,
        bootstrap: Option<&str>,
        params: serde_json::Value,
    ) -> Self {
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            schema: SCHEMA_VERSION,
            kind: kind.into(),
            label: label.into(),
            started_unix_ms,
            bootstrap: bootstrap.map(str::to_string),
            params,
            ok: true,
            errors: Vec::new(),
            notes: Vec::new(),
            duration_s: 0.0,
            records: 0,
            bytes: 0,
            records_per_s: 0.0,
            mb_per_s: 0.0,
            latency: None,
            timeline: Vec::new(),
            extra: BTreeMap::new(),
            machine: None,
        }
    }

    /// Marks the run failed with `why`.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.ok = false;
        self.errors.push(why.into());
    }

    /// Sets records, bytes, duration and the derived rates.
    pub fn set_totals(&mut self, records: u64, bytes: u64, duration_s: f64) {
        self.records = records;
        self.bytes = bytes;
        self.duration_s = duration_s;
        // No rate from an instant (a run of zero or one record).
        let valid = duration_s > 1e-6;
        self.records_per_s = if valid {
            records as f64 / duration_s
        } else {
            0.0
        };
        self.mb_per_s = if valid {
            bytes as f64 / MB / duration_s
        } else {
            0.0
        };
    }

    /// The run as a small Markdown document: a title line and a table.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let status = if self.ok { "ok" } else { "FAILED" };
        let _ = writeln!(s, "### {} ({}) — {status}\n", self.label, self.kind);
        let _ = writeln!(s, "| metric | value |\n| --- | --- |");
        if let Some(m) = &self.machine {
            for (k, v) in m.rows() {
                let _ = writeln!(s, "| {k} | {v} |");
            }
        } else if self.kind == "rss" {
            for (k, v) in &self.extra {
                let _ = writeln!(s, "| {k} | {} |", compact(v));
            }
        } else {
            let _ = writeln!(s, "| records | {} |", self.records);
            let _ = writeln!(s, "| payload bytes | {} |", self.bytes);
            let _ = writeln!(s, "| duration | {:.2} s |", self.duration_s);
            let _ = writeln!(s, "| records/s | {:.0} |", self.records_per_s);
            let _ = writeln!(s, "| MB/s | {:.2} |", self.mb_per_s);
            if let Some(l) = &self.latency {
                let _ = writeln!(
                    s,
                    "| latency p50 / p90 / p99 / p99.9 / max | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} ms |",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
            for (k, v) in &self.extra {
                let _ = writeln!(s, "| {k} | {} |", compact(v));
            }
        }
        for e in &self.errors {
            let _ = writeln!(s, "| error | {} |", escape(e));
        }
        for n in &self.notes {
            let _ = writeln!(s, "| note | {} |", escape(n));
        }
        s
    }

    /// The file stem this run's outputs share: `<label>-<started_unix_ms>`.
    pub fn stem(&self) -> String {
        let safe: String = self
            .label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}-{}", self.started_unix_ms)
    }

    /// Writes `<stem>.json`, `<stem>.md` and (when there is a timeline) `<stem>.svg`
    /// into `dir`; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = self.stem();
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let md = dir.join(format!("{stem}.md"));
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("writing {}", md.display()))?;
        let mut out = vec![json, md];
        if !self.timeline.is_empty() {
            let svg = dir.join(format!("{stem}.svg"));
            crate::plot::plot_run(self, &svg)?;
            out.push(svg);
        }
        Ok(out)
    }

    /// Reads a result written by [`RunResult::write`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => escape(s),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        other => escape(&other.to_string()),
    }
}

/// Escapes text for a Markdown table cell.
pub fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::stats::Sample;

    /// A synthetic produce run with a timeline, for report and plot tests.
    pub fn synthetic(label: &str, mb_per_s: f64, p99: f64) -> RunResult {
        let mut r = RunResult::new(
            "produce",
            label,
            Some("127.0.0.1:9092"),
            serde_json::json!({"record_size": 1024}),
        );
        r.set_totals(10_000, 10_240_000, 10_240_000.0 / MB / mb_per_s);
        let lat = LatencySummary {
            count: 10_000,
            mean_ms: 2.0,
            p50_ms: 1.5,
            p90_ms: 3.0,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            max_ms: p99 * 3.0,
        };
        r.latency = Some(lat);
        r.timeline = (1..=5)
            .map(|i| Sample {
                t_s: i as f64,
                interval_s: 1.0,
                records: 2000,
                bytes: 2_048_000,
                records_per_s: 2000.0,
                mb_per_s: 2.048 + i as f64 * 0.1,
                latency: Some(LatencySummary {
                    p99_ms: p99 + i as f64,
                    ..lat
                }),
            })
            .collect();
        r.extra.insert("acks".into(), serde_json::json!("all"));
        r
    }

    #[test]
    fn set_totals_computes_rates() {
        let mut r = RunResult::new("consume", "c", None, serde_json::Value::Null);
        r.set_totals(1000, 2_000_000, 2.0);
        assert_eq!(r.records_per_s, 500.0);
        assert_eq!(r.mb_per_s, 1.0);
        r.set_totals(0, 0, 0.0);
        assert_eq!(r.records_per_s, 0.0);
        r.set_totals(1, 100, 0.0);
        assert_eq!((r.records_per_s, r.mb_per_s), (0.0, 0.0));
    }

    #[test]
    fn markdown_lists_metrics_errors_and_notes() {
        let mut r = synthetic("p|1", 100.0, 7.0);
        r.fail("3 deliveries failed: Broker: Unknown topic");
        r.notes.push("stopped by --max-seconds".into());
        let md = r.markdown();
        assert!(md.contains("### p|1 (produce) — FAILED"), "{md}");
        assert!(md.contains("| records | 10000 |"), "{md}");
        assert!(md.contains("| MB/s | 100.00 |"), "{md}");
        assert!(md.contains("1.50 / 3.00 / 7.00 / 14.00 / 21.00 ms"), "{md}");
        assert!(md.contains("| acks | all |"), "{md}");
        assert!(md.contains("| error | 3 deliveries failed"), "{md}");
        assert!(md.contains("| note | stopped by --max-seconds |"), "{md}");
    }

    #[test]
    fn write_and_read_round_trip() {
        let dir = std::env::temp_dir().join(format!("phxq-bench-report-{}", std::process::id()));
        let r = synthetic("round/trip", 50.0, 4.0);
        let paths = r.write(&dir).unwrap();
        assert_eq!(paths.len(), 3);
        assert!(paths[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("round_trip-"));
        let back = RunResult::read(&paths[0]).unwrap();
        assert_eq!(back.records, r.records);
        assert_eq!(back.timeline, r.timeline);
        let svg = std::fs::read_to_string(&paths[2]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
