//! The fuzz loop of one target: replay the corpus (`fuzz/corpus/<target>/`), then the
//! target's seeds, then mutants of both until the execution count or time is reached.
//! Every execution is checked ([`exec_one`]): a panic (even one the decoder catches
//! itself, as `codec::decode_request` does), an allocation past the target's bound, or an
//! execution that takes longer than the hang limit (a watchdog thread) is a finding: its
//! input is written to the crash directory and the run goes on (a hang ends the process).
//!
//! Everything random comes from one seed ([`Options::seed`]), so a run is reproduced by
//! its seed and options.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::mutate::Mutator;
use crate::targets::Target;

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Mutated executions (the corpus and seeds are run first, in addition).
    pub execs: u64,
    /// Stop after this long even if fewer executions were made.
    pub time_limit: Option<Duration>,
    /// Holds `<target>/` directories of inputs to replay first.
    pub corpus_dir: PathBuf,
    /// Where findings' inputs are written (`<target>/<kind>-<hash>.bin`).
    pub crash_dir: PathBuf,
    /// Largest mutant, in bytes.
    pub max_len: usize,
    /// An execution taking longer is a hang.
    pub hang_after: Duration,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

impl Options {
    pub fn new(seed: u64, execs: u64) -> Options {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Options {
            seed,
            execs,
            time_limit: None,
            corpus_dir: root.join("corpus"),
            crash_dir: root.join("crashes"),
            max_len: 64 << 10,
            hang_after: Duration::from_secs(10),
            progress: false,
        }
    }
}

/// A failed check.
#[derive(Clone, Debug)]
pub struct Finding {
    /// `panic` or `allocation` (a hang aborts the process).
    pub kind: &'static str,
    pub message: String,
    /// The input, as written to the crash directory.
    pub path: PathBuf,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    /// Inputs replayed from the corpus directory.
    pub corpus: usize,
    /// Seeds built by the target.
    pub seeds: usize,
    /// Every execution: corpus, seeds and mutants.
    pub execs: u64,
    /// Executions whose input decoded (the rest were refused with an error).
    pub decoded: u64,
    /// One per distinct finding (same kind and place), first input kept.
    pub findings: Vec<Finding>,
    /// Executions that failed a check, duplicates included.
    pub failed_execs: u64,
    pub elapsed: Duration,
    /// The most bytes per input byte a stage allocated (beyond its documented caps, on
    /// inputs of 4 KiB and more), and which stage: how close the decoders came to the
    /// bound's PER_BYTE.
    pub worst_per_byte: (usize, &'static str),
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static IN_EXEC: Cell<bool> = const { Cell::new(false) };
    static PANICKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records panics raised during an execution (caught or not) instead of printing them;
/// other panics go to the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_EXEC.with(Cell::get) {
                let bt = std::backtrace::Backtrace::force_capture();
                PANICKED.with(|p| *p.borrow_mut() = Some(format!("{info}\n{bt}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs the target on one input with every check: `Ok(decoded)` or the failed check.
pub fn exec_one(target: &dyn Target, input: &[u8]) -> Result<bool, (&'static str, String)> {
    install_panic_hook();
    IN_EXEC.with(|f| f.set(true));
    PANICKED.with(|p| p.borrow_mut().take());
    let r = panic::catch_unwind(AssertUnwindSafe(|| target.exec(input)));
    IN_EXEC.with(|f| f.set(false));
    let panicked = PANICKED.with(|p| p.borrow_mut().take());
    match (r, panicked) {
        (_, Some(p)) => Err(("panic", p)),
        (Err(_), None) => Err(("panic", "panicked (no message)".into())),
        (Ok(Err(why)), None) => Err(("allocation", why)),
        (Ok(Ok(decoded)), None) => Ok(decoded),
    }
}

/// FNV-1a: names a crash file by its input.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Where a finding comes from, to keep one input per distinct finding: the panic's source
/// location, or the allocation's stage.
fn signature(kind: &str, message: &str) -> String {
    let first = message.lines().next().unwrap_or("");
    match kind {
        "panic" => first
            .split_once(" at ")
            .map_or(first, |(_, loc)| loc.trim_end_matches(':'))
            .to_string(),
        _ => first.split(':').next().unwrap_or(first).to_string(),
    }
}

/// Writes a finding's input (and its message beside it, if any); returns the input's path.
pub fn write_crash(dir: &Path, target: &str, kind: &str, input: &[u8], message: &str) -> PathBuf {
    let dir = dir.join(target);
    let path = dir.join(format!("{kind}-{:016x}.bin", fnv(input)));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, input))
        .and_then(|_| match message {
            "" => Ok(()),
            m => std::fs::write(path.with_extension("txt"), m),
        });
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", path.display());
    }
    path
}

/// The inputs of `dir` in name order (none when it does not exist; an unreadable file is
/// an error).
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for e in entries {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "bin") {
            paths.push(p);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).map(|d| (p, d)))
        .collect()
}

/// The input being executed, for the watchdog.
struct Current {
    input: Mutex<Vec<u8>>,
    /// Microseconds since the run started at which the execution began, plus one; 0 idle.
    since: AtomicU64,
    done: AtomicBool,
}

fn watchdog(current: Arc<Current>, start: Instant, opts: Options, target: &'static str) {
    std::thread::spawn(move || {
        while !current.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let since = current.since.load(Ordering::Relaxed);
            if since == 0 {
                continue;
            }
            let began = Duration::from_micros(since - 1);
            if start.elapsed().saturating_sub(began) > opts.hang_after {
                let input = current.input.lock().unwrap_or_else(|p| p.into_inner());
                let msg = format!("an execution took longer than {:?}", opts.hang_after);
                let path = write_crash(&opts.crash_dir, target, "hang", &input, &msg);
                eprintln!(
                    "HANG in {target}: {msg}; input written to {}",
                    path.display()
                );
                std::process::abort();
            }
        }
    });
}

/// Runs `target` as `opts` says.
pub fn run(target: &dyn Target, opts: &Options) -> std::io::Result<Report> {
    assert!(
        crate::alloc::installed(),
        "the counting allocator is not this binary's #[global_allocator]"
    );
    let name: &'static str = target.name();
    let start = Instant::now();
    let mut report = Report {
        target: name.to_string(),
        seed: opts.seed,
        ..Default::default()
    };
    let current = Arc::new(Current {
        input: Mutex::new(Vec::new()),
        since: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    watchdog(current.clone(), start, opts.clone(), name);
    let mut seen = HashSet::new();
    let mut one = |input: &[u8], report: &mut Report| -> bool {
        {
            let mut c = current.input.lock().unwrap_or_else(|p| p.into_inner());
            c.clear();
            c.extend_from_slice(input);
        }
        current
            .since
            .store(start.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        let r = exec_one(target, input);
        current.since.store(0, Ordering::Relaxed);
        report.execs += 1;
        match r {
            Ok(decoded) => {
                report.decoded += decoded as u64;
                decoded
            }
            Err((kind, message)) => {
                report.failed_execs += 1;
                if seen.insert((kind, signature(kind, &message))) {
                    let path = write_crash(&opts.crash_dir, name, kind, input, &message);
                    eprintln!(
                        "FINDING in {name} ({kind}): {message}\n  input ({} bytes) written to {}",
                        input.len(),
                        path.display()
                    );
                    report.findings.push(Finding {
                        kind,
                        message,
                        path,
                    });
                }
                false
            }
        }
    };

    crate::targets::take_worst();
    let corpus = load_corpus(&opts.corpus_dir.join(name))?;
    report.corpus = corpus.len();
    let mut m = Mutator::new(opts.seed, opts.max_len);
    let seeds = target.seeds(&mut m.rng);
    report.seeds = seeds.len();
    let mut pool: Vec<Vec<u8>> = Vec::with_capacity(corpus.len() + seeds.len());
    for (_, input) in corpus {
        one(&input, &mut report);
        pool.push(input);
    }
    for s in seeds {
        one(&s, &mut report);
        pool.push(s);
    }
    let fixed = pool.len();
    // Mutants that still decode join the pool (a bounded number, replaced at random), so
    // mutations stack across executions.
    const GROWN: usize = 4096;
    let mut last_print = Instant::now();
    let mut mutants = 0u64;
    while mutants < opts.execs {
        let mut data = pool[m.rng.usize(0..pool.len())].clone();
        if !target.mutate_structured(&mut data, &mut m, &pool) {
            m.mutate(&mut data, &pool);
        }
        target.fixup(&mut data, &mut m.rng);
        let decoded = one(&data, &mut report);
        mutants += 1;
        if decoded && m.rng.u32(0..8) == 0 {
            if pool.len() < fixed + GROWN {
                pool.push(data);
            } else {
                let at = fixed + m.rng.usize(0..GROWN);
                pool[at] = data;
            }
        }
        if mutants.is_multiple_of(4096) {
            if opts.time_limit.is_some_and(|t| start.elapsed() >= t) {
                break;
            }
            if opts.progress && last_print.elapsed() >= Duration::from_secs(5) {
                last_print = Instant::now();
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{name}: {} execs in {secs:.0} s ({:.0}/s), {:.1}% decoded, {} findings",
                    report.execs,
                    report.execs as f64 / secs,
                    100.0 * report.decoded as f64 / report.execs as f64,
                    report.findings.len()
                );
                let _ = std::io::stdout().flush();
            }
        }
    }
    current.done.store(true, Ordering::Relaxed);
    report.elapsed = start.elapsed();
    report.worst_per_byte = crate::targets::take_worst();
    Ok(report)
}

/// `n` mutants of `target`'s seeds, made as a run makes them (mutation, then fixup), from
/// `seed`, at most `max_len` bytes each. They are not executed: the end-to-end test sends
/// them to a running broker.
pub fn mutants(target: &dyn Target, seed: u64, n: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut m = Mutator::new(seed, max_len);
    let pool = target.seeds(&mut m.rng);
    (0..n)
        .map(|_| {
            let mut data = pool[m.rng.usize(0..pool.len())].clone();
            if !target.mutate_structured(&mut data, &mut m, &pool) {
                m.mutate(&mut data, &pool);
            }
            target.fixup(&mut data, &mut m.rng);
            data
        })
        .collect()
}
