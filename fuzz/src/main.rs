//! `phxq-fuzz`: the long mode of the fuzz harness. Runs one target (or all, one after
//! the other) for a number of executions or a time, prints the seed, progress and the
//! executions per second, and exits non-zero when a check failed. `--replay FILE` runs
//! one input (a crash file) and says what happened; `--emit N --out FILE` writes mutants
//! without running them (for `compat-tests/python/test_fuzz_wire.py`). See
//! `docs/fuzzing.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use phxq_fuzz::run::{self, Options};
use phxq_fuzz::targets;

#[global_allocator]
static ALLOC: phxq_fuzz::alloc::Counting = phxq_fuzz::alloc::Counting;

#[derive(Parser)]
#[command(about = "Fuzz phxq's decoders (kafka-request, record-batch, inter-broker)")]
struct Args {
    /// kafka-request, record-batch, inter-broker, or all.
    #[arg(long, default_value = "all")]
    target: String,
    /// Mutated executions per target.
    #[arg(long, default_value_t = 1_000_000)]
    execs: u64,
    /// Stop each target after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
    /// PRNG seed (decimal or 0x hex); random when not given. Printed either way.
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Corpus directory (holds <target>/*.bin); default fuzz/corpus.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where findings are written; default fuzz/crashes.
    #[arg(long)]
    crashes: Option<PathBuf>,
    /// Largest mutant in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    max_len: usize,
    /// Run this one input through the target and report.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Write this many mutants of the target (not executed) to --out, each as a 4-byte
    /// big-endian length and the bytes: the end-to-end test sends them to a broker.
    #[arg(long, requires = "out")]
    emit: Option<usize>,
    /// The file --emit writes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the target's seeds to DIR/<target>/seed-<hash>.bin (to pick corpus inputs from).
    #[arg(long)]
    seeds_out: Option<PathBuf>,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let chosen: Vec<_> = if args.target == "all" {
        targets::all()
    } else {
        match targets::by_name(&args.target) {
            Some(t) => vec![t],
            None => {
                eprintln!(
                    "unknown target {}: kafka-request, record-batch, inter-broker or all",
                    args.target
                );
                return ExitCode::from(2);
            }
        }
    };
    if let Some(path) = &args.replay {
        let input = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let mut failed = false;
        for t in &chosen {
            match run::exec_one(t.as_ref(), &input) {
                Ok(decoded) => println!(
                    "{}: ok ({})",
                    t.name(),
                    if decoded { "decoded" } else { "refused" }
                ),
                Err((kind, message)) => {
                    failed = true;
                    println!("{}: {kind}: {message}", t.name());
                }
            }
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!("seed 0x{seed:016x}");
    if let Some(dir) = &args.seeds_out {
        for t in &chosen {
            let mut rng = fastrand::Rng::with_seed(seed);
            for s in t.seeds(&mut rng) {
                run::write_crash(dir, t.name(), "seed", &s, "");
            }
        }
        return ExitCode::SUCCESS;
    }
    if let (Some(n), Some(out)) = (args.emit, &args.out) {
        let mut file = Vec::new();
        for t in &chosen {
            for m in run::mutants(t.as_ref(), seed, n, args.max_len) {
                file.extend_from_slice(&(m.len() as u32).to_be_bytes());
                file.extend_from_slice(&m);
            }
        }
        if let Err(e) = std::fs::write(out, file) {
            eprintln!("cannot write {}: {e}", out.display());
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    let mut opts = Options::new(seed, args.execs);
    opts.time_limit = args.seconds.map(Duration::from_secs);
    opts.max_len = args.max_len;
    opts.progress = true;
    if let Some(c) = args.corpus {
        opts.corpus_dir = c;
    }
    if let Some(c) = args.crashes {
        opts.crash_dir = c;
    }
    let mut failed = false;
    for t in &chosen {
        let report = match run::run(t.as_ref(), &opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: cannot read the corpus: {e}", t.name());
                return ExitCode::from(2);
            }
        };
        println!(
            "{}: seed 0x{:016x}, {} corpus inputs, {} seeds, {} executions in {:.1} s = {:.0} execs/s, {:.1}% decoded, {} findings ({} failing executions); most allocated per input byte: {} ({})",
            report.target,
            report.seed,
            report.corpus,
            report.seeds,
            report.execs,
            report.elapsed.as_secs_f64(),
            report.execs_per_sec(),
            100.0 * report.decoded as f64 / report.execs.max(1) as f64,
            report.findings.len(),
            report.failed_execs,
            report.worst_per_byte.0,
            report.worst_per_byte.1,
        );
        for f in &report.findings {
            println!("  {} -> {}", f.kind, f.path.display());
        }
        failed |= !report.findings.is_empty();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
