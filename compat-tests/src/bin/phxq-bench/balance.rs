//! `balance`: how well a group's assignor spreads work over its consumers, PhxQueue's
//! scheduler against count-based assignors, with real librdkafka consumers.
//!
//! For each assignor in turn, on a fresh topic and group: a producer writes at a fixed total
//! rate while consumers with a fixed capacity each (records/s, enforced by the consumer
//! loop, standing in for the work a real consumer does per record) read in one group;
//! every second the run samples each member's backlog (records produced but not yet
//! consumed in the partitions it is assigned) and records the largest. Production stops
//! after `--duration-secs`; the run then measures how long the group needs to drain.
//!
//! Scenarios: `skew`, one partition receives 10x the inflow of each other one, consumers
//! are equal; `slow`, inflow is even and one consumer has a tenth of the others' capacity;
//! `even`, neither (the load is even: a good scheduler moves nothing).
//! Assignors: `load` and `uniform` (KIP-848, `group.remote.assignor`, the broker
//! assigns) and `range` (classic protocol, the client-side leader assigns by count).
//! Reported per assignor: peak and mean of the largest member backlog, time to drain after
//! production stopped, and partitions moved (handed to a consumer other than their last holder).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use plotters::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use serde::Serialize;

use crate::kafka::{ensure_topic, unique_topic, ClientOpts};

#[derive(Debug, Clone, Args)]
pub struct BalanceParams {
    /// `skew` (one partition gets 10x the inflow), `slow` (one consumer at a tenth of the
    /// others' capacity) or `even` (neither: nothing should move).
    #[arg(long, default_value = "skew")]
    pub scenario: String,
    /// Assignors to compare, in order: load, uniform (KIP-848), range (classic).
    #[arg(long, value_delimiter = ',', default_value = "load,uniform,range")]
    pub assignors: Vec<String>,
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    #[arg(long, default_value_t = 3)]
    pub consumers: usize,
    /// Total records produced per second.
    #[arg(long, default_value_t = 2100)]
    pub rate: u64,
    /// Records per second one consumer can process.
    #[arg(long, default_value_t = 1100)]
    pub capacity: u64,
    /// Seconds of production.
    #[arg(long, default_value_t = 40)]
    pub duration_secs: u64,
    /// Longest wait for the group to drain after production stopped.
    #[arg(long, default_value_t = 120)]
    pub drain_secs: u64,
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
}

#[derive(Debug, Serialize)]
pub struct AssignorResult {
    pub assignor: String,
    /// (seconds since start, largest member backlog)
    pub timeline: Vec<(f64, i64)>,
    pub peak_backlog: i64,
    pub mean_backlog: f64,
    /// Seconds from the end of production until every produced record was consumed;
    /// `None` if it did not drain within the limit.
    pub drain_secs: Option<f64>,
    pub partitions_moved: usize,
    pub produced: i64,
    pub consumed: i64,
}

#[derive(Debug, Serialize)]
pub struct BalanceResult {
    pub scenario: String,
    pub params: String,
    pub runs: Vec<AssignorResult>,
}

/// Shared by the threads of one run.
struct Shared {
    stop: AtomicBool,
    /// Next offset to produce per partition (records acknowledged so far).
    produced: Vec<AtomicI64>,
    /// Next offset to consume per partition (highest consumed + 1).
    consumed_to: Vec<AtomicI64>,
    /// Current assignment of each consumer.
    assignment: Vec<Mutex<BTreeSet<i32>>>,
    /// The last consumer that held each partition, and how many times a partition went to
    /// a consumer other than its last holder.
    handovers: Mutex<(BTreeMap<i32, usize>, usize)>,
    consumed: AtomicI64,
}

pub fn run(opts: &ClientOpts, p: &BalanceParams, out_dir: &Path) -> Result<BalanceResult> {
    if !matches!(p.scenario.as_str(), "skew" | "slow" | "even") {
        bail!("unknown scenario {:?} (skew, slow or even)", p.scenario);
    }
    let mut runs = Vec::new();
    for assignor in &p.assignors {
        if !matches!(assignor.as_str(), "load" | "uniform" | "range") {
            bail!("unknown assignor {assignor:?} (load, uniform or range)");
        }
        eprintln!("balance {}: {assignor} ...", p.scenario);
        let r = run_one(opts, p, assignor)?;
        eprintln!(
            "balance {}: {assignor}: peak backlog {}, drain {:?} s, moved {}",
            p.scenario, r.peak_backlog, r.drain_secs, r.partitions_moved
        );
        runs.push(r);
    }
    let result = BalanceResult {
        scenario: p.scenario.clone(),
        params: format!(
            "{} partitions, {} consumers, {} records/s of {} B for {} s, consumer capacity {} records/s{}",
            p.partitions,
            p.consumers,
            p.rate,
            p.record_size,
            p.duration_secs,
            p.capacity,
            if p.scenario == "slow" { " (one at a tenth)" } else { "" }
        ),
        runs,
    };
    std::fs::create_dir_all(out_dir)?;
    let stem = out_dir.join(format!("balance-{}", p.scenario));
    std::fs::write(
        stem.with_extension("json"),
        serde_json::to_vec_pretty(&result)?,
    )?;
    std::fs::write(stem.with_extension("md"), markdown(&result))?;
    plot(&result, &stem.with_extension("svg"))?;
    println!("{}", markdown(&result));
    Ok(result)
}

fn run_one(opts: &ClientOpts, p: &BalanceParams, assignor: &str) -> Result<AssignorResult> {
    let topic = unique_topic(&format!("balance-{}-{assignor}", p.scenario));
    let group = format!("{topic}-group");
    ensure_topic(opts, &topic, p.partitions, 1, Duration::from_secs(30))?;
    let n = p.partitions as usize;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        produced: (0..n).map(|_| AtomicI64::new(0)).collect(),
        consumed_to: (0..n).map(|_| AtomicI64::new(0)).collect(),
        assignment: (0..p.consumers)
            .map(|_| Mutex::new(BTreeSet::new()))
            .collect(),
        handovers: Mutex::new((BTreeMap::new(), 0)),
        consumed: AtomicI64::new(0),
    });
    let consumers: Vec<_> = (0..p.consumers)
        .map(|i| {
            let capacity = if p.scenario == "slow" && i == 0 {
                (p.capacity / 10).max(1)
            } else {
                p.capacity
            };
            let mut overrides = vec![
                ("group.id", group.clone()),
                ("auto.offset.reset", "earliest".to_string()),
                ("enable.auto.commit", "true".to_string()),
                ("auto.commit.interval.ms", "1000".to_string()),
            ];
            if assignor == "range" {
                overrides.push(("group.protocol", "classic".into()));
                overrides.push(("partition.assignment.strategy", "range".into()));
            } else {
                overrides.push(("group.protocol", "consumer".into()));
                overrides.push(("group.remote.assignor", assignor.to_string()));
            }
            let consumer: BaseConsumer = opts
                .config(&format!("balance-{i}"), &overrides)
                .create()
                .context("creating consumer")?;
            consumer.subscribe(&[topic.as_str()])?;
            let shared = shared.clone();
            Ok(std::thread::spawn(move || {
                consume(consumer, i, capacity, &shared)
            }))
        })
        .collect::<Result<_>>()?;
    // Let the group form before producing (every consumer assigned, every partition
    // covered), so every assignor starts from its own first assignment rather than from a
    // backlog; handovers while the group forms are not moves.
    let forming = Instant::now();
    while forming.elapsed() < Duration::from_secs(30) {
        let sets: Vec<BTreeSet<i32>> = shared
            .assignment
            .iter()
            .map(|a| a.lock().expect("assignment").clone())
            .collect();
        let covered: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        if sets.iter().all(|s| !s.is_empty()) && covered.len() == n {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    shared.handovers.lock().expect("handovers").1 = 0;
    let start = Instant::now();
    let producer_shared = shared.clone();
    let producer: ThreadedProducer<DefaultProducerContext> = opts
        .config("balance-producer", &[("linger.ms", "5".to_string())])
        .create()
        .context("creating producer")?;
    let (rate, duration, size, scenario, topic_p) = (
        p.rate,
        Duration::from_secs(p.duration_secs),
        p.record_size,
        p.scenario.clone(),
        topic.clone(),
    );
    let producing = std::thread::spawn(move || {
        produce(
            &producer,
            &topic_p,
            rate,
            duration,
            size,
            &scenario,
            &producer_shared,
        )
    });
    // Sample the largest member backlog every second until drained or out of time.
    let mut timeline = Vec::new();
    let mut drained_at = None;
    let production_end = Duration::from_secs(p.duration_secs);
    let limit = production_end + Duration::from_secs(p.drain_secs);
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        let t = start.elapsed();
        let backlog = |part: usize| {
            (shared.produced[part].load(Ordering::Relaxed)
                - shared.consumed_to[part].load(Ordering::Relaxed))
            .max(0)
        };
        let largest = shared
            .assignment
            .iter()
            .map(|a| {
                a.lock()
                    .expect("assignment")
                    .iter()
                    .map(|p| backlog(*p as usize))
                    .sum::<i64>()
            })
            .max()
            .unwrap_or(0);
        timeline.push((t.as_secs_f64(), largest));
        let all_in = (0..n).all(|p| backlog(p) == 0);
        if t > production_end && producing.is_finished() && all_in {
            drained_at = Some((t - production_end).as_secs_f64());
            break;
        }
    }
    producing
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    shared.stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    let during: Vec<i64> = timeline.iter().map(|(_, b)| *b).collect();
    let moved = shared.handovers.lock().expect("handovers").1;
    Ok(AssignorResult {
        assignor: assignor.to_string(),
        peak_backlog: during.iter().copied().max().unwrap_or(0),
        mean_backlog: during.iter().sum::<i64>() as f64 / during.len().max(1) as f64,
        timeline,
        drain_secs: drained_at,
        partitions_moved: moved,
        produced: shared
            .produced
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum(),
        consumed: shared.consumed.load(Ordering::Relaxed),
    })
}

/// Produces `rate` records/s for `duration`: evenly, or (skew) with partition 0 weighted
/// 10 against 1 for every other partition.
fn produce(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    rate: u64,
    duration: Duration,
    size: usize,
    scenario: &str,
    shared: &Shared,
) -> Result<()> {
    let n = shared.produced.len();
    let weights: Vec<u64> = (0..n)
        .map(|p| if scenario == "skew" && p == 0 { 10 } else { 1 })
        .collect();
    let wheel: Vec<usize> = (0..n)
        .flat_map(|p| std::iter::repeat_n(p, weights[p] as usize))
        .collect();
    let value = vec![b'x'; size];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut pending: BTreeMap<usize, i64> = BTreeMap::new();
    while start.elapsed() < duration {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let p = wheel[(sent as usize) % wheel.len()];
            let rec = BaseRecord::<(), [u8]>::to(topic)
                .partition(p as i32)
                .payload(&value);
            if producer.send(rec).is_err() {
                producer.poll(Duration::from_millis(10));
                continue;
            }
            *pending.entry(p).or_default() += 1;
            sent += 1;
        }
        producer.flush(Duration::from_secs(10))?;
        for (p, k) in std::mem::take(&mut pending) {
            shared.produced[p].fetch_add(k, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Consumes at most `capacity` records/s until told to stop; keeps the shared view of its
/// assignment and of how far each partition was consumed.
fn consume(consumer: BaseConsumer, me: usize, capacity: u64, shared: &Shared) -> Result<()> {
    // Capacity: a token bucket holding at most a tenth of a second of work, so a consumer
    // cannot save up capacity while it has nothing to do.
    let burst = (capacity as f64 / 10.0).max(1.0);
    let mut tokens = burst;
    let mut refilled = Instant::now();
    let mut last_check = Instant::now() - Duration::from_secs(1);
    while !shared.stop.load(Ordering::Relaxed) {
        if last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            let now: BTreeSet<i32> = consumer
                .assignment()
                .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            let mut mine = shared.assignment[me].lock().expect("assignment");
            if *mine != now {
                let mut h = shared.handovers.lock().expect("handovers");
                for p in now.difference(&mine) {
                    if h.0.insert(*p, me).is_some_and(|last| last != me) {
                        h.1 += 1;
                    }
                }
                *mine = now;
            }
        }
        tokens = (tokens + refilled.elapsed().as_secs_f64() * capacity as f64).min(burst);
        refilled = Instant::now();
        if tokens < 1.0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                shared.consumed_to[p].fetch_max(m.offset() + 1, Ordering::Relaxed);
                shared.consumed.fetch_add(1, Ordering::Relaxed);
                tokens -= 1.0;
            }
            Some(Err(e)) => eprintln!("consumer {me}: {e}"),
            None => {}
        }
    }
    Ok(())
}

fn markdown(r: &BalanceResult) -> String {
    let mut out = format!(
        "### balance: {}\n\n{}\n\n| assignor | peak largest member backlog | mean | drain after production (s) | partitions moved |\n| --- | --- | --- | --- | --- |\n",
        r.scenario, r.params
    );
    for a in &r.runs {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} |\n",
            a.assignor,
            a.peak_backlog,
            a.mean_backlog,
            a.drain_secs
                .map_or("did not drain".to_string(), |d| format!("{d:.0}")),
            a.partitions_moved
        ));
    }
    out
}

fn plot(r: &BalanceResult, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plot: {e}");
    let root = SVGBackend::new(path, (960, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let x_max = r
        .runs
        .iter()
        .flat_map(|a| a.timeline.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = r
        .runs
        .iter()
        .map(|a| a.peak_backlog)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("largest member backlog: {}", r.scenario),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("records")
        .draw()
        .map_err(|e| err(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, a) in r.runs.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                a.timeline.iter().map(|(t, b)| (*t, *b as f64)),
                color,
            ))
            .map_err(|e| err(&e))?
            .label(a.assignor.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
