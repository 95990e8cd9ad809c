//! Throughput of the produce path (ignored; run in release):
//! `cargo test --release -p phxq-replication --test bench -- --ignored --nocapture`
//!
//! 64 concurrent proposers append 1 KiB batches for a few seconds, to one group and spread
//! over 4 groups; reports appends/s, MB/s, fsyncs/s, appends per fsync and bytes written to
//! disk (from /proc/self/io) per produced byte.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use phxq_replication::*;

fn disk_write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn run(groups: u32, proposers: usize, batch_bytes: usize, secs: u64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let node = open(dir.path()).await;
    let mut gs = Vec::new();
    for id in 1..=groups {
        let g = node.open_group(GroupId(id)).await.unwrap();
        create(&g, &[part(id as u128, 0), part(id as u128, 1)]).await;
        gs.push(g);
    }
    // One record of `batch_bytes` minus the batch and record overhead.
    let b = batch_with(1, 1, None, batch_bytes.saturating_sub(80));
    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c0, w0, t0) = (node.counters(), disk_write_bytes(), Instant::now());
    let mut tasks = Vec::new();
    for w in 0..proposers {
        let g = gs[w % gs.len()].clone();
        let p = part((w % gs.len() + 1) as u128, (w % 2) as i32);
        let (b, produced, stop) = (b.clone(), produced.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                append1(&g, p, b.clone()).await.unwrap();
                produced.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let el = t0.elapsed().as_secs_f64();
    let (c1, w1) = (node.counters(), disk_write_bytes());
    let bytes = produced.load(Ordering::Relaxed) as f64;
    let appends = bytes / b.len() as f64;
    let fsyncs = (c1.durable_commits - c0.durable_commits) as f64;
    let commits = (c1.commits - c0.commits) as f64;
    println!(
        "groups={groups} proposers={proposers} batch={}B: {:.0} appends/s, {:.1} MB/s, {:.0} commits/s ({:.0} fsync'd/s), \
         {:.1} appends per fsync, disk bytes per produced byte {:.2} (log {:.2}, batches {:.2})",
        b.len(),
        appends / el,
        bytes / el / 1e6,
        commits / el,
        fsyncs / el,
        (c1.appends_flushed - c0.appends_flushed) as f64 / fsyncs.max(1.0),
        (w1 - w0) as f64 / bytes,
        (c1.log_bytes - c0.log_bytes) as f64 / bytes,
        (c1.batch_bytes - c0.batch_bytes) as f64 / bytes,
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_produce() {
    let secs = std::env::var("PHXQ_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // PHXQ_BENCH_PROPOSERS=n: only one group with n proposers.
    if let Some(n) = std::env::var("PHXQ_BENCH_PROPOSERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(1, n, 1024, secs).await;
        return;
    }
    run(1, 64, 1024, secs).await;
    run(4, 64, 1024, secs).await;
    run(4, 64, 16 * 1024 - 100, secs).await;
}
