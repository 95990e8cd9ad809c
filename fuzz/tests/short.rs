//! The short mode, part of `cargo test`: every target for a fixed number of executions
//! from a fixed seed (override with `PHXQ_FUZZ_SEED`; `PHXQ_FUZZ_EXECS` changes the
//! count), with the corpus replayed first. Fails on any finding. Also checks that the
//! checks themselves fire: a panicking and an over-allocating decoder are caught.

use phxq_fuzz::run::{self, Options};
use phxq_fuzz::targets::{self, Target};

#[global_allocator]
static ALLOC: phxq_fuzz::alloc::Counting = phxq_fuzz::alloc::Counting;

const SEED: u64 = 0x7068_7871_6675_7a7a;
/// Mutated executions per target: one to three seconds each in a release build.
const EXECS: &[(&str, u64)] = &[
    ("kafka-request", 1_000_000),
    ("record-batch", 150_000),
    ("inter-broker", 1_000_000),
];

fn options(name: &str) -> Options {
    let seed = std::env::var("PHXQ_FUZZ_SEED")
        .ok()
        .map(|s| {
            u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("PHXQ_FUZZ_SEED is hex")
        })
        .unwrap_or(SEED);
    let execs = std::env::var("PHXQ_FUZZ_EXECS")
        .ok()
        .map(|s| s.parse().expect("PHXQ_FUZZ_EXECS is a number"))
        .unwrap_or_else(|| {
            EXECS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(100_000, |e| e.1)
        });
    let mut o = Options::new(seed, execs);
    o.crash_dir = std::env::temp_dir().join("phxq-fuzz-crashes");
    o
}

fn short(name: &str) {
    let target = targets::by_name(name).unwrap();
    let opts = options(name);
    let r = run::run(target.as_ref(), &opts).unwrap();
    println!(
        "{name}: seed 0x{:016x}, {} corpus, {} seeds, {} execs in {:.2} s ({:.0}/s), {} decoded",
        r.seed,
        r.corpus,
        r.seeds,
        r.execs,
        r.elapsed.as_secs_f64(),
        r.execs_per_sec(),
        r.decoded
    );
    assert!(r.corpus > 0, "the corpus of {name} is empty");
    assert!(r.decoded > 0, "nothing of {name} decoded");
    assert!(
        r.findings.is_empty(),
        "{name}: {} findings (seed 0x{:016x}): {:#?}",
        r.findings.len(),
        r.seed,
        r.findings
    );
}

#[test]
fn kafka_request() {
    short("kafka-request");
}

#[test]
fn record_batch() {
    short("record-batch");
}

#[test]
fn inter_broker() {
    short("inter-broker");
}

/// A decoder with both kinds of bugs: it panics on a 0xAB byte (inside a catch_unwind of
/// its own, as the Kafka decoder guards itself) and reserves what a length says on 0xCD.
struct Buggy;

impl Target for Buggy {
    fn name(&self) -> &'static str {
        "buggy"
    }
    fn seeds(&self, _rng: &mut fastrand::Rng) -> Vec<Vec<u8>> {
        vec![vec![0, 0, 0, 0], vec![1, 2, 3, 4]]
    }
    fn exec(&self, input: &[u8]) -> Result<bool, String> {
        targets::stage("buggy", input.len(), 0, || {
            if input.contains(&0xab) {
                let _ = std::panic::catch_unwind(|| panic!("0xab"));
            }
            if let Some(p) = input.iter().position(|&b| b == 0xcd) {
                let len = u32::from_be_bytes([0, 0x10, input.len() as u8, p as u8]) as usize;
                std::hint::black_box(Vec::<u8>::with_capacity(len));
            }
            true
        })
    }
}

#[test]
fn the_checks_catch_a_panic_and_an_allocation() {
    let mut opts = options("buggy");
    opts.execs = 20_000;
    opts.seed = 1;
    opts.crash_dir = std::env::temp_dir().join(format!("phxq-fuzz-canary-{}", std::process::id()));
    let r = run::run(&Buggy, &opts).unwrap();
    let kinds: Vec<_> = r.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&"panic"), "{:?}", r.findings);
    assert!(kinds.contains(&"allocation"), "{:?}", r.findings);
    for f in &r.findings {
        let input = std::fs::read(&f.path).unwrap();
        assert!(
            run::exec_one(&Buggy, &input).is_err(),
            "{} replays",
            f.path.display()
        );
    }
    std::fs::remove_dir_all(&opts.crash_dir).unwrap();
}
