//! `phxq-bench`: benchmark any Kafka-compatible broker through librdkafka
//! (the rdkafka crate with its bundled librdkafka), so that the figures are
//! those a real client sees.
//!
//! Subcommands:
//! * `produce`  — throughput and latency of acknowledged produces ([`produce`]);
//! * `consume`  — throughput of reading a topic back, with verification ([`consume`]);
//! * `e2e`      — end-to-end latency at a fixed rate ([`e2e`]);
//! * `balance`  — how evenly a group's assignor spreads work: largest member backlog,
//!   time to drain, partitions moved, per assignor ([`balance`]);
//! * `machine`  — this machine's disk and loopback limits ([`machine`]);
//! * `rss`      — a process's peak resident memory (the broker's, after a suite);
//!
//! With `--broker-pid`, produce/consume/e2e also report the average CPU cores
//! the broker and this client used during the run (from /proc/PID/stat).
//! * `summarize`— the Markdown page of a suite's results ([`summary`]);
//! * `plot`     — redraw a run's SVG from its JSON ([`plot`]).
//!
//! Every run writes `<out-dir>/<label>-<unix ms>.{json,md,svg}` and prints its
//! Markdown table; the exit status is 1 when the run failed (the files are
//! written anyway, with the reason).

mod balance;
mod consume;
mod e2e;
mod kafka;
mod machine;
#[cfg(test)]
mod mock_tests;
mod plot;
mod procstat;
mod produce;
mod report;
mod stats;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::kafka::ClientOpts;
use crate::report::RunResult;

#[derive(Debug, Parser)]
#[command(
    name = "phxq-bench",
    version,
    about = "Benchmark a Kafka-compatible broker with librdkafka"
)]
struct Cli {
    /// Broker address(es), comma separated.
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        env = "PHXQ_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
    /// Directory for the result files of this run.
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        default_value = "bench-results"
    )]
    out_dir: PathBuf,
    /// Name of this run in file names and reports (default: the subcommand).
    #[arg(help_heading = "Global options", long, global = true)]
    label: Option<String>,
    /// Do not draw a progress bar.
    #[arg(help_heading = "Global options", long, global = true)]
    no_progress: bool,
    /// Extra librdkafka property for every client, e.g. -X fetch.wait.max.ms=100 (repeatable).
    #[arg(help_heading = "Global options", short = 'X', global = true, value_parser = kafka::parse_property)]
    property: Vec<(String, String)>,
    /// The broker's process id (same machine): report its CPU use during the run.
    #[arg(help_heading = "Global options", long, global = true)]
    broker_pid: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce fixed-size records; acknowledged records/s, MB/s, send -> ack latency.
    Produce(produce::ProduceParams),
    /// Read a topic from the beginning (assign, no group); records/s, MB/s, verified count.
    Consume(consume::ConsumeParams),
    /// End-to-end latency (send -> receive) at a fixed rate, client-default settings.
    E2e(e2e::E2eParams),
    /// Compare assignors (load, uniform, range) under skewed inflow or a slow consumer.
    Balance(balance::BalanceParams),
    /// Measure this machine: fsync'd disk bandwidth, small fsync latency, loopback TCP.
    Machine(MachineArgs),
    /// Record a process's peak resident memory (VmHWM) from /proc/PID/status.
    Rss(RssArgs),
    /// Write the Markdown page of a suite from the result files under a directory.
    Summarize(SummarizeArgs),
    /// Redraw the SVG plot of a run from its JSON result.
    Plot(PlotArgs),
}

#[derive(Debug, Clone, Args)]
struct PlotArgs {
    /// A run result written by produce, consume or e2e.
    json: PathBuf,
    /// SVG file to write (default: next to the JSON, same name).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct MachineArgs {
    /// Directory on the disk to measure (use the broker's data directory's file system).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Bytes to write in the sequential fdatasync test.
    #[arg(long, default_value_t = 1 << 30)]
    disk_bytes: u64,
    /// Chunk size of the sequential test (one fdatasync per chunk).
    #[arg(long, default_value_t = 1 << 20)]
    chunk_bytes: usize,
    /// Time cap of the sequential test.
    #[arg(long, default_value_t = 10.0)]
    disk_max_secs: f64,
    /// Seconds of 4 KiB append + fdatasync.
    #[arg(long, default_value_t = 2.0)]
    small_secs: f64,
    /// Seconds of loopback TCP streaming.
    #[arg(long, default_value_t = 3.0)]
    tcp_secs: f64,
}

#[derive(Debug, Clone, Args)]
struct RssArgs {
    /// Process id to read.
    #[arg(long)]
    pid: u32,
    /// The process's data directory: its size is recorded next to the memory figures.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct SummarizeArgs {
    /// Directory holding the suite's result files (searched recursively).
    #[arg(long)]
    results: PathBuf,
    /// Markdown file to write.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Copy one representative plot per run here (default: link the plots in place).
    #[arg(long)]
    plots_dir: Option<PathBuf>,
    /// Page title.
    #[arg(long, default_value = "phxq benchmarks")]
    title: String,
    /// Paragraph under the title (repeatable).
    #[arg(long)]
    preamble: Vec<String>,
    /// Line of the Notes section (repeatable).
    #[arg(long)]
    note: Vec<String>,
}

fn progress_bar(hidden: bool, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(0);
    if hidden {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{elapsed_precise}] {wide_bar:.cyan/blue} {human_pos}/{human_len} {msg}",
    )
    .expect("valid progress template")
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(label.to_string());
    pb
}

fn kind_of(command: &Command) -> &'static str {
    match command {
        Command::Produce(_) => "produce",
        Command::Consume(_) => "consume",
        Command::E2e(_) => "e2e",
        Command::Balance(_) => "balance",
        Command::Machine(_) => "machine",
        Command::Rss(_) => "rss",
        Command::Summarize(_) => "summarize",
        Command::Plot(_) => "plot",
    }
}

fn run_machine(a: &MachineArgs, label: &str, progress: &ProgressBar) -> Result<RunResult> {
    let params = machine::MachineParams {
        dir: a.dir.clone(),
        disk_bytes: a.disk_bytes,
        chunk_bytes: a.chunk_bytes,
        disk_max_secs: a.disk_max_secs,
        small_secs: a.small_secs,
        tcp_secs: a.tcp_secs,
    };
    let mut result = RunResult::new("machine", label, None, serde_json::to_value(&params)?);
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = machine::run(&params, progress)?;
    result.duration_s =
        report.disk_seq.seconds + report.disk_small_sync.seconds + report.loopback_tcp.seconds;
    result.machine = Some(report);
    Ok(result)
}

fn run_rss(a: &RssArgs, label: &str) -> Result<RunResult> {
    let (hwm, rss) = procstat::memory_kib(a.pid)?;
    let mut result = RunResult::new("rss", label, None, serde_json::json!({ "pid": a.pid }));
    result.extra.insert("vmhwm_kib".into(), hwm.into());
    result.extra.insert("vmrss_kib".into(), rss.into());
    if let Some(dir) = &a.data_dir {
        let bytes = procstat::dir_size(dir)?;
        result
            .extra
            .insert("data_dir_kib".into(), (bytes / 1024).into());
    }
    Ok(result)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Summarize(a) = &cli.command {
        let opts = summary::SummaryOptions {
            title: a.title.clone(),
            preamble: a.preamble.clone(),
            notes: a.note.clone(),
            plots_dir: a.plots_dir.clone(),
            out: a.out.clone(),
        };
        return match summary::summarize(&a.results, &opts) {
            Ok(()) => {
                eprintln!("wrote {}", a.out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("phxq-bench summarize: {e:#}");
                ExitCode::FAILURE
            }
        };
    }

    if let Command::Plot(a) = &cli.command {
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| a.json.with_extension("svg"));
        let drawn = RunResult::read(&a.json).and_then(|r| plot::plot_run(&r, &out));
        return match drawn {
            Ok(()) => {
                eprintln!("wrote {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("phxq-bench plot: {e:#}");
                ExitCode::FAILURE
            }
        };
    }

    let kind = kind_of(&cli.command);
    let label = cli.label.clone().unwrap_or_else(|| kind.to_string());
    let opts = ClientOpts {
        bootstrap: cli.bootstrap.clone(),
        extra: cli.property.clone(),
    };
    if let Command::Balance(p) = &cli.command {
        // Its own report: one table and one plot over several assignors.
        return match balance::run(&opts, p, &cli.out_dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("phxq-bench balance: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let progress = progress_bar(cli.no_progress, &label);
    let cpu = procstat::CpuMeter::start(cli.broker_pid);
    let outcome = match &cli.command {
        Command::Produce(p) => produce::run(&opts, p, &label, &progress),
        Command::Consume(p) => consume::run(&opts, p, &label, &progress),
        Command::E2e(p) => e2e::run(&opts, p, &label, &progress),
        Command::Machine(a) => run_machine(a, &label, &progress),
        Command::Rss(a) => run_rss(a, &label),
        Command::Summarize(_) | Command::Plot(_) | Command::Balance(_) => {
            unreachable!("handled above")
        }
    };
    progress.finish_and_clear();
    let mut result = outcome.unwrap_or_else(|e| {
        // Setup failed (topic creation, metadata...): still leave a result saying why.
        let bootstrap = (kind != "machine" && kind != "rss").then_some(cli.bootstrap.as_str());
        let params = match &cli.command {
            Command::Produce(p) => serde_json::to_value(p).ok(),
            Command::Consume(p) => serde_json::to_value(p).ok(),
            Command::E2e(p) => serde_json::to_value(p).ok(),
            _ => None,
        };
        let params = params.unwrap_or_default();
        let mut r = RunResult::new(kind, &label, bootstrap, params);
        r.fail(format!("{e:#}"));
        r
    });
    if matches!(kind, "produce" | "consume" | "e2e") {
        if !cli.property.is_empty() && result.params.is_object() {
            let props: serde_json::Map<String, serde_json::Value> = cli
                .property
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            result.params["client_properties"] = props.into();
        }
        let (client, broker) = cpu.finish();
        for (key, cores) in [("client_cpu_cores", client), ("broker_cpu_cores", broker)] {
            if let Some(c) = cores {
                result
                    .extra
                    .insert(key.into(), ((c * 100.0).round() / 100.0).into());
            }
        }
    }
    print!("{}", result.markdown());
    match result.write(&cli.out_dir) {
        Ok(paths) => {
            for p in paths {
                eprintln!("wrote {}", p.display());
            }
        }
        Err(e) => {
            eprintln!("phxq-bench: writing results: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_produce_with_globals_anywhere() {
        let cli = Cli::try_parse_from([
            "phxq-bench",
            "produce",
            "--bootstrap",
            "127.0.0.1:19092",
            "--records",
            "5000",
            "--record-size",
            "100",
            "--producers",
            "2",
            "--acks",
            "1",
            "--compression",
            "lz4",
            "--idempotence",
            "-X",
            "linger.ms=20",
            "--label",
            "p100",
        ])
        .unwrap();
        assert_eq!(cli.bootstrap, "127.0.0.1:19092");
        assert_eq!(cli.label.as_deref(), Some("p100"));
        assert_eq!(
            cli.property,
            vec![("linger.ms".to_string(), "20".to_string())]
        );
        let Command::Produce(p) = cli.command else {
            panic!("not produce")
        };
        assert_eq!((p.records, p.record_size, p.producers), (5000, 100, 2));
        assert_eq!((p.acks.as_str(), p.compression.as_str()), ("1", "lz4"));
        assert!(p.idempotence);
        assert_eq!(p.linger_ms, None);
    }

    #[test]
    fn consume_expect_conflicts_with_expect_from() {
        assert!(Cli::try_parse_from([
            "phxq-bench",
            "consume",
            "--topic",
            "t",
            "--expect",
            "1",
            "--expect-from",
            "x.json"
        ])
        .is_err());
        assert!(
            Cli::try_parse_from(["phxq-bench", "consume"]).is_err(),
            "--topic is required"
        );
    }

    #[test]
    fn e2e_defaults() {
        let cli = Cli::try_parse_from(["phxq-bench", "e2e"]).unwrap();
        let Command::E2e(p) = cli.command else {
            panic!("not e2e")
        };
        assert_eq!((p.rate, p.record_size, p.partitions), (1000, 100, 1));
        assert_eq!(p.duration_secs, 30.0);
    }

    #[test]
    fn bad_property_is_rejected() {
        assert!(Cli::try_parse_from(["phxq-bench", "-X", "nokey", "machine"]).is_err());
    }

    #[test]
    fn rss_of_this_process() {
        let args = RssArgs {
            pid: std::process::id(),
            data_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")),
        };
        let r = run_rss(&args, "rss").unwrap();
        assert!(r.extra["data_dir_kib"].as_u64().unwrap() > 0);
        assert!(r.extra["vmhwm_kib"].as_u64().unwrap() > 0);
        assert!(r.extra["vmrss_kib"].as_u64().unwrap() > 0);
    }
}
