//! Latency histograms, the shared per-run recorder, and the once-a-second
//! sampler that turns the recorder into a timeline (and drives the progress bar).
//!
//! Latencies are recorded in microseconds in an HDR histogram (3 significant
//! digits, 1 us .. 1 h) and reported in milliseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

/// Bytes in the "MB" of every MB/s this tool prints (decimal megabyte).
pub const MB: f64 = 1_000_000.0;

/// A new microsecond latency histogram: 1 us .. 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Percentiles of one latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a microsecond histogram; `None` when it holds no value.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

/// One point of a run's timeline: what was completed during one interval
/// (normally one second) ending `t_s` seconds after the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub interval_s: f64,
    pub records: u64,
    pub bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// Latency of the records completed in this interval, when the workload measures one.
    pub latency: Option<LatencySummary>,
}

#[derive(Debug)]
struct Inner {
    total_latency: Histogram<u64>,
    interval_latency: Histogram<u64>,
    errors: u64,
    first_errors: Vec<String>,
}

/// Thread-safe sink for completed records (a delivery report, a consumed
/// message), shared by the workload's threads and the sampler.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    records: AtomicU64,
    bytes: AtomicU64,
    interval_records: AtomicU64,
    interval_bytes: AtomicU64,
    first_completion_ns: AtomicU64,
    last_completion_ns: AtomicU64,
    /// Latency histograms and errors; records without latency never take this lock.
    inner: Mutex<Inner>,
}

/// Totals of a recorder at the end of a run.
#[derive(Debug, Clone)]
pub struct Totals {
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub latency: Option<LatencySummary>,
    /// Time from the recorder's start to the first completed record (zero when none).
    pub first_completion: Duration,
    /// Time from the recorder's start to the last completed record.
    pub last_completion: Duration,
}

/// How many distinct error messages a recorder keeps verbatim.
const KEPT_ERRORS: usize = 5;

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            interval_records: AtomicU64::new(0),
            interval_bytes: AtomicU64::new(0),
            first_completion_ns: AtomicU64::new(u64::MAX),
            last_completion_ns: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                total_latency: new_histogram(),
                interval_latency: new_histogram(),
                errors: 0,
                first_errors: Vec::new(),
            }),
        }
    }

    /// The instant the run's clock started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the run started (the clock of delivery opaques and e2e timestamps).
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records one successfully completed record of `bytes` payload bytes,
    /// with its latency in microseconds when the workload measures one.
    pub fn record(&self, bytes: u64, latency_us: Option<u64>) {
        self.record_many(1, bytes, latency_us);
    }

    /// Records `records` completed records totalling `bytes` bytes, with one
    /// latency sample (in microseconds) for each of them when given.
    pub fn record_many(&self, records: u64, bytes: u64, latency_us: Option<u64>) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.interval_records.fetch_add(records, Ordering::Relaxed);
        self.interval_bytes.fetch_add(bytes, Ordering::Relaxed);
        let now = self.now_ns();
        self.first_completion_ns.fetch_min(now, Ordering::Relaxed);
        self.last_completion_ns.fetch_max(now, Ordering::Relaxed);
        if let Some(us) = latency_us {
            let mut inner = self.inner.lock().expect("recorder lock");
            inner
                .interval_latency
                .saturating_record_n(us.max(1), records);
            inner.total_latency.saturating_record_n(us.max(1), records);
        }
    }

    /// Records one failed record (a failed delivery, a consumer error).
    pub fn record_error(&self, message: impl Into<String>) {
        let message = message.into();
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.errors += 1;
        if inner.first_errors.len() < KEPT_ERRORS && !inner.first_errors.contains(&message) {
            inner.first_errors.push(message);
        }
    }

    /// Records completed so far (cheap, lock-free).
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Takes (and resets) the current interval as a sample ending now.
    fn take_sample(&self, t_s: f64, interval_s: f64) -> Sample {
        let mut inner = self.inner.lock().expect("recorder lock");
        let latency = LatencySummary::from_histogram(&inner.interval_latency);
        inner.interval_latency.reset();
        drop(inner);
        let records = self.interval_records.swap(0, Ordering::Relaxed);
        let bytes = self.interval_bytes.swap(0, Ordering::Relaxed);
        Sample {
            t_s,
            interval_s,
            records,
            bytes,
            records_per_s: records as f64 / interval_s.max(1e-9),
            mb_per_s: bytes as f64 / MB / interval_s.max(1e-9),
            latency,
        }
    }

    /// Totals over the whole run.
    pub fn totals(&self) -> Totals {
        let inner = self.inner.lock().expect("recorder lock");
        Totals {
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: inner.errors,
            first_errors: inner.first_errors.clone(),
            latency: LatencySummary::from_histogram(&inner.total_latency),
            first_completion: match self.first_completion_ns.load(Ordering::Relaxed) {
                u64::MAX => Duration::ZERO,
                ns => Duration::from_nanos(ns),
            },
            last_completion: Duration::from_nanos(self.last_completion_ns.load(Ordering::Relaxed)),
        }
    }
}

/// Background thread that samples a [`Recorder`] once a second into a
/// timeline and keeps the progress bar current.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling `recorder`; `progress` shows records completed.
    pub fn start(recorder: Arc<Recorder>, progress: ProgressBar) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || sample_loop(&recorder, &progress, &stop2))
            .expect("spawn sampler thread");
        Self { stop, handle }
    }

    /// Stops sampling (recording the last, partial interval) and returns the timeline.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        // A panicked sampler must not pass for an empty timeline: re-raise its panic.
        self.handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

fn sample_loop(recorder: &Recorder, progress: &ProgressBar, stop: &AtomicBool) -> Vec<Sample> {
    let start = recorder.start();
    let mut samples: Vec<Sample> = Vec::new();
    let mut last = Duration::ZERO;
    let mut tick = 1u64;
    loop {
        let due = Duration::from_secs(tick);
        // Sleep in small steps so that `finish` returns promptly.
        while start.elapsed() < due && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(
                (due.saturating_sub(start.elapsed())).min(Duration::from_millis(20)),
            );
        }
        let stopping = stop.load(Ordering::Relaxed);
        let now = start.elapsed();
        let interval = (now - last).as_secs_f64();
        let sample = recorder.take_sample(now.as_secs_f64(), interval);
        progress.set_position(recorder.records());
        progress.set_message(format!(
            "{:>9.0} rec/s {:>8.1} MB/s",
            sample.records_per_s, sample.mb_per_s
        ));
        match samples.last_mut() {
            // A final interval shorter than 50 ms would show a meaningless rate: fold it
            // into the previous sample (its latency summary stays the previous one's).
            Some(prev) if stopping && interval < 0.05 => {
                prev.records += sample.records;
                prev.bytes += sample.bytes;
                prev.interval_s += sample.interval_s;
                prev.t_s = sample.t_s;
                prev.records_per_s = prev.records as f64 / prev.interval_s;
                prev.mb_per_s = prev.bytes as f64 / MB / prev.interval_s;
            }
            _ => samples.push(sample),
        }
        last = now;
        if stopping {
            return samples;
        }
        tick += 1;
    }
}

/// Median of a list of values (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles_of_a_uniform_histogram() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::from_histogram(&h).unwrap();
        assert_eq!(s.count, 10_000);
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 10.0).abs() < 0.01, "{s:?}");
        assert!(LatencySummary::from_histogram(&new_histogram()).is_none());
    }

    #[test]
    fn recorder_totals_and_interval_reset() {
        let r = Recorder::new(Instant::now());
        r.record(100, Some(2000));
        r.record(100, Some(4000));
        r.record_error("boom");
        r.record_error("boom");
        let s = r.take_sample(1.0, 1.0);
        assert_eq!(s.records, 2);
        assert_eq!(s.bytes, 200);
        assert_eq!(s.latency.unwrap().count, 2);
        let s2 = r.take_sample(2.0, 1.0);
        assert_eq!(s2.records, 0);
        assert!(s2.latency.is_none());
        let t = r.totals();
        assert_eq!((t.records, t.bytes, t.errors), (2, 200, 2));
        assert_eq!(t.first_errors, vec!["boom".to_string()]);
        assert_eq!(t.latency.unwrap().count, 2);
    }

    #[test]
    fn sampler_produces_a_timeline() {
        let r = Arc::new(Recorder::new(Instant::now()));
        let sampler = Sampler::start(r.clone(), ProgressBar::hidden());
        for _ in 0..10 {
            r.record(10, None);
        }
        std::thread::sleep(Duration::from_millis(1100));
        r.record(10, None);
        std::thread::sleep(Duration::from_millis(100));
        let timeline = sampler.finish();
        assert_eq!(timeline.iter().map(|s| s.records).sum::<u64>(), 11);
        assert!(timeline.len() >= 2, "{timeline:?}");
        assert!((timeline[0].t_s - 1.0).abs() < 0.1);
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }
}
