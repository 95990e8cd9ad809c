//! `phxq`: a Kafka-wire-compatible message broker built like Tencent's PhxQueue.
//!
//! `phxq serve` runs a node; see `cli.rs` for every flag.

mod addr;
mod admin;
mod audit;
mod broker;
mod broker_configs;
mod cli;
mod cluster;
mod compaction;
mod config;
mod config_ops;
mod connection;
mod console;
mod disk;
mod errors;
mod groups;
mod handlers;
mod kafka_client;
mod metrics;
mod placement;
mod quotas;
mod retention;
mod scheduler;
mod security;
mod server;
mod share;
mod shutdown;
mod topic_configs;
mod topics;
mod txn;

#[cfg(test)]
mod storage_faults;

use clap::Parser;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => logs.json().init(),
        cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, no backtrace: the operator's mistake or the machine's state.
            eprintln!("phxq: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Produce request frames are up to a MiB each and are freed once their batches are durable.
/// With glibc's defaults such buffers come from fresh mmaps or freshly trimmed heap, and the
/// kernel faults in and zeroes every page again as a socket read fills it (about 10% of
/// the broker's CPU in a produce-1k profile). A fixed mmap threshold and a higher trim
/// threshold let freed buffers be reused instead; what is kept is bounded by the trim
/// threshold per malloc arena.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called first thing in main, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
