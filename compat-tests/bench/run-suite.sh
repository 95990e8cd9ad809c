#!/usr/bin/env bash
# The phxq benchmark suite.
#
# Builds the release binaries once, then for each repetition: measures this
# machine's limits (fdatasync'd disk writes in the broker's data directory,
# loopback TCP), starts a fresh single-node `phxq serve` on a fresh data
# directory, runs the standard workloads against it with phxq-bench (librdkafka),
# records the broker's peak RSS, and stops it. Finally writes the medians and
# their ratios to the machine limits to docs/benchmarks.md (plots to
# docs/benchmarks/). Raw results go to bench-results/suite-<time>/ (gitignored).
#
# Usage: compat-tests/bench/run-suite.sh [--quick] [--reps N] [--port PORT]
#                                         [--docs | --no-docs] [--keep-data]
#   --quick      smoke run, under a minute: 1 repetition, short workloads, and
#                docs/benchmarks.md is left alone unless --docs is given.
#   --reps N     repetitions (default 3; medians are taken over them).
#   --port PORT  broker port on 127.0.0.1 (default 39092; must be free).
#   --docs       regenerate docs/benchmarks.md (default unless --quick).
#   --no-docs    write the summary only into the results directory.
#   --keep-data  keep the broker data directories (default: removed).
#
# Environment: PHXQ_BENCH_DATA_ROOT (where data directories are made; default
# $TMPDIR or /tmp: the disk measured is the one holding it), PHXQ_BENCH_PRODUCERS
# and PHXQ_BENCH_PARTITIONS (the 100 B produce run; default 2 and 4),
# PHXQ_BENCH_CLUSTER=0 (skip the three-node cluster runs, see below).
#
# Exit status: 0 when every run succeeded, 1 when any failed (the summary is
# written anyway and lists the failures), 2 on a usage or build error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

QUICK=0
REPS=""
PORT=39092
DOCS=""
KEEP_DATA=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS="$2"; shift ;;
    --port) PORT="$2"; shift ;;
    --docs) DOCS=1 ;;
    --no-docs) DOCS=0 ;;
    --keep-data) KEEP_DATA=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-suite.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---- Workload sizes ---------------------------------------------------------
# Every produce run is capped in time (--max-seconds): what was sent by then is
# awaited and counted, so a slow broker makes a shorter run, never a longer one.
PRODUCERS=${PHXQ_BENCH_PRODUCERS:-2}
PARTITIONS=${PHXQ_BENCH_PARTITIONS:-4}
if [[ $QUICK == 1 ]]; then
  REPS=${REPS:-1}
  DOCS=${DOCS:-0}
  MACHINE_ARGS=(--disk-bytes $((128 << 20)) --disk-max-secs 2 --small-secs 0.5 --tcp-secs 1)
  P1K_RECORDS=20000;    P1K_SECS=5
  P100_RECORDS=300000;  P100_SECS=5
  CONSUME_SECS=30
  E2E_SECS=5;           E2E_WARMUP=1
else
  REPS=${REPS:-3}
  DOCS=${DOCS:-1}
  MACHINE_ARGS=(--disk-bytes $((1 << 30)) --disk-max-secs 8 --small-secs 2 --tcp-secs 3)
  P1K_RECORDS=5000000;  P1K_SECS=20
  P100_RECORDS=50000000; P100_SECS=20
  CONSUME_SECS=120
  E2E_SECS=20;          E2E_WARMUP=2
fi
E2E_RATE=1000

log() { printf '[run-suite %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- Build once ---------------------------------------------------------------
# --workspace, like the project's other builds: building a subset unifies
# dependency features differently and would rebuild much of the tree.
log "building release binaries (cargo build --release --workspace)"
if ! cargo build --release --workspace; then
  log "build failed"; exit 2
fi
PHXQ="$ROOT/target/release/phxq"
BENCH="$ROOT/target/release/phxq-bench"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/bench-results/suite-$STAMP"
mkdir -p "$RESULTS"
DATA_ROOT=$(mktemp -d "${PHXQ_BENCH_DATA_ROOT:-${TMPDIR:-/tmp}}/phxq-bench.XXXXXX")
BOOTSTRAP="127.0.0.1:$PORT"
FAILED=0
NOTES=()
BROKER_PID=""

# The first panic or error line of a broker log (plus the line after), one line.
broker_failure() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -m1 -A1 -E "panicked|ERROR" | tr '\n' ' ' | cut -c1-300 || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$PORT"; then
  log "port $PORT is already in use; pick another with --port"; exit 2
fi

start_broker() { # $1 = data dir, $2 = log file
  NO_COLOR=1 "$PHXQ" serve --listen "$BOOTSTRAP" --data-dir "$1" >"$2" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 150); do
    if port_open "$PORT"; then
      # Listening is not enough: a broker that fails right after binding is caught here.
      sleep 0.5
      if kill -0 "$BROKER_PID" 2>/dev/null; then return 0; fi
      log "broker exited right after it started listening; last lines of $2:"
      grep -v '^ \{2,\}' "$2" | tail -n 8 >&2
      BROKER_PID=""; return 1
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      log "broker exited during startup; last lines of $2:"
      grep -v '^ \{2,\}' "$2" | tail -n 8 >&2
      BROKER_PID=""; return 1
    fi
    sleep 0.2
  done
  log "broker did not listen on $BOOTSTRAP within 30 s"; stop_broker; return 1
}

stop_broker() {
  [[ -n "$BROKER_PID" ]] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    log "broker did not stop within 10 s of SIGTERM; killing it"
    NOTES+=("The broker did not exit within 10 s of SIGTERM and was killed.")
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}

cleanup() {
  stop_broker
  stop_cluster
  if [[ $KEEP_DATA == 0 ]]; then rm -rf "$DATA_ROOT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs one phxq-bench command; a failed run is recorded, not fatal.
bench() {
  local pid_args=()
  if [[ -n "$BROKER_PID" ]]; then pid_args=(--broker-pid "$BROKER_PID"); fi
  if ! "$BENCH" --bootstrap "$BOOTSTRAP" --out-dir "$OUT" "${pid_args[@]}" "$@"; then
    FAILED=1
    log "run failed: phxq-bench $*"
  fi
}

# True while the broker runs; the first time it is found dead in a repetition,
# says so (with the panic or error line from its log) and records a note.
broker_alive() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then return 0; fi
  if [[ -n "$BROKER_PID" ]]; then
    wait "$BROKER_PID" 2>/dev/null && STATUS=0 || STATUS=$?
    local why
    if [[ $STATUS == 0 ]] && grep -q "shutting down" "$OUT/broker.log"; then
      # phxq shuts down cleanly on SIGINT/SIGTERM, and this script had not sent one.
      why="it shut down cleanly: something outside the suite sent it SIGINT or SIGTERM"
    else
      why=$(broker_failure "$OUT/broker.log")
    fi
    log "the broker exited (status $STATUS): $why"
    NOTES+=("Repetition $REP: the broker exited during the workloads (status $STATUS): $why. The rest of that repetition was skipped; its log is broker.log in the results.")
    FAILED=1
    BROKER_PID=""
  fi
  return 1
}

# ---- Three-node cluster -----------------------------------------------------------
# Three `phxq serve` processes on this machine (Kafka ports PORT+1..PORT+3, inter-broker
# PORT+11..PORT+13), each with its own data directory under the repetition's, started
# after the single-node workloads of the same repetition so that both are measured under
# the same conditions. The produce workloads run again with --replication-factor 3 and
# labels suffixed "-3n"; acks=all then means fsync'd on 2 of 3 nodes. All three nodes,
# the clients and the single disk share this machine: a real cluster has 3x the cores
# and disks. PHXQ_BENCH_CLUSTER=0 skips it.
CLUSTER_PIDS=()

cluster_config() { # $1 = node id, $2 = data dir
  local id=$1 b
  printf 'node_id = %s\ndata_dir = "%s"\nlisteners = ["127.0.0.1:%s"]\nstore_groups = 3\nraft_heartbeat_ms = 250\n\n[cluster]\n' \
    "$id" "$2" $((PORT + id))
  for b in 1 2 3; do
    printf '[[cluster.brokers]]\nid = %s\nkafka = "127.0.0.1:%s"\ninternal = "127.0.0.1:%s"\n\n' \
      "$b" $((PORT + b)) $((PORT + 10 + b))
  done
}

start_cluster() { # $1 = data dir root, $2 = log prefix
  local n
  CLUSTER_PIDS=()
  for n in 1 2 3; do
    mkdir -p "$1/node$n"
    cluster_config "$n" "$1/node$n" >"$1/node$n.toml"
    NO_COLOR=1 "$PHXQ" serve --config "$1/node$n.toml" >"$2-node$n.log" 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  for _ in $(seq 1 150); do
    if port_open $((PORT + 1)) && port_open $((PORT + 2)) && port_open $((PORT + 3)); then
      sleep 1; return 0
    fi
    sleep 0.2
  done
  log "the three-node cluster did not listen within 30 s"; stop_cluster; return 1
}

stop_cluster() {
  for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  CLUSTER_PIDS=()
}

cluster_alive() {
  for pid in "${CLUSTER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
  [[ ${#CLUSTER_PIDS[@]} == 3 ]]
}

run_cluster_suite() { # within a repetition: $OUT, $DATA, $REP set
  [[ "${PHXQ_BENCH_CLUSTER:-1}" == 1 ]] || return 0
  log "repetition $REP/$REPS: starting a three-node cluster"
  if ! start_cluster "$DATA/cluster" "$OUT/cluster"; then
    NOTES+=("Repetition $REP: the three-node cluster did not start (logs cluster-node*.log in the results).")
    FAILED=1; return 0
  fi
  local single_bootstrap=$BOOTSTRAP
  BOOTSTRAP="127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))"
  cluster_alive && bench --label produce-1k-3n produce --topic "bench-1k-3n-r$REP" \
    --record-size 1024 --records "$P1K_RECORDS" --producers 1 --partitions 1 --acks all \
    --replication-factor 3 --max-seconds "$P1K_SECS"
  cluster_alive && bench --label produce-100b-3n produce --topic "bench-100b-3n-r$REP" \
    --record-size 100 --records "$P100_RECORDS" --producers "$PRODUCERS" \
    --partitions "$PARTITIONS" --acks all --replication-factor 3 --max-seconds "$P100_SECS"
  if ! cluster_alive; then
    NOTES+=("Repetition $REP: a cluster node exited during the workloads (logs cluster-node*.log in the results).")
    FAILED=1
  fi
  BOOTSTRAP=$single_bootstrap
  stop_cluster
}

# ---- The suite ------------------------------------------------------------------
SUITE_START=$(date +%s)
# Other work on the machine skews every figure: record how busy it was.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for REP in $(seq 1 "$REPS"); do
  OUT="$RESULTS/rep$REP"
  DATA="$DATA_ROOT/rep$REP"
  mkdir -p "$OUT" "$DATA"
  log "repetition $REP/$REPS: machine limits (disk in $DATA)"
  bench --label machine machine --dir "$DATA" "${MACHINE_ARGS[@]}"

  log "repetition $REP/$REPS: starting phxq on $BOOTSTRAP"
  if ! start_broker "$DATA" "$OUT/broker.log"; then
    why=$(broker_failure "$OUT/broker.log")
    NOTES+=("Repetition $REP: the broker did not start: \`$why\` (broker.log in the results).")
    FAILED=1
    continue
  fi

  broker_alive && bench --label produce-1k produce --topic "bench-1k-r$REP" \
    --record-size 1024 --records "$P1K_RECORDS" --producers 1 --partitions 1 --acks all \
    --max-seconds "$P1K_SECS"

  broker_alive && bench --label produce-100b produce --topic "bench-100b-r$REP" \
    --record-size 100 --records "$P100_RECORDS" --producers "$PRODUCERS" \
    --partitions "$PARTITIONS" --acks all --max-seconds "$P100_SECS"

  if broker_alive; then
    P100_JSON=$(ls "$OUT"/produce-100b-*.json 2>/dev/null | head -n 1 || true)
    if [[ -n "$P100_JSON" ]]; then
      # librdkafka 2.x stops fetching for fetch.queue.backoff.ms (default 1000) whenever
      # its queue holds more than queued.min.messages (100000): with 100 B records from
      # a fast broker the client then idles most of each second and measures itself,
      # not the broker (about 0.3 M rec/s instead of 1 M here). 10 ms removes that.
      bench --label consume-100b -X fetch.queue.backoff.ms=10 consume --topic "bench-100b-r$REP" \
        --expect-from "$P100_JSON" --max-seconds "$CONSUME_SECS"
    fi
  fi

  broker_alive && bench --label e2e-1000 e2e --topic "bench-e2e-r$REP" --rate "$E2E_RATE" \
    --duration-secs "$E2E_SECS" --warmup-secs "$E2E_WARMUP" --record-size 100

  # The same with linger.ms=0: librdkafka's default linger.ms=5 holds each record up to
  # 5 ms in the client (2.5 ms on average at this rate), which no broker can win back;
  # this run shows what the broker and the fetch path add on their own.
  broker_alive && bench --label e2e-1000-linger0 -X linger.ms=0 e2e --topic "bench-e2e0-r$REP" \
    --rate "$E2E_RATE" --duration-secs "$E2E_SECS" --warmup-secs "$E2E_WARMUP" --record-size 100

  broker_alive && bench --label broker-rss rss --pid "$BROKER_PID" --data-dir "$DATA"
  stop_broker
  run_cluster_suite
  if [[ $KEEP_DATA == 0 ]]; then rm -rf "$DATA"; fi
done
SUITE_SECS=$(( $(date +%s) - SUITE_START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "workloads took ${SUITE_SECS}s; load average before: $LOAD_BEFORE, after: $LOAD_AFTER"

# ---- Summary ----------------------------------------------------------------------
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then COMMIT="$COMMIT (with uncommitted changes)"; fi
MODE=$([[ $QUICK == 1 ]] && echo "--quick" || echo "default")
PREAMBLE=(
  "Generated by \`compat-tests/bench/run-suite.sh\` ($MODE mode, $REPS repetition(s), ${SUITE_SECS} s of workloads) on $(date -u +%Y-%m-%d) at commit $COMMIT. Do not edit by hand: rerun the suite. Raw results: \`bench-results/suite-$STAMP/\` (not committed)."
  "Load average (1, 5, 15 min) when the workloads started: $LOAD_BEFORE; when they ended: $LOAD_AFTER (on $(nproc) cores). Anything else running on the machine competes with the broker and the clients and lowers these figures."
  "The broker is a single node (\`phxq serve --listen $BOOTSTRAP --data-dir <fresh tmp dir>\`), started fresh for each repetition. The clients (phxq-bench: librdkafka through the rdkafka crate) run on the same machine and compete with the broker for its cores. Rows labelled \`-3n\` ran against a three-node cluster (three \`phxq serve\` processes, 3 store groups of 3 voters, topics with replication factor 3) started right after the single-node runs of the same repetition, on the same machine: three brokers, their fsyncs and the clients share its cores and its one disk, so the cluster ratio is a floor for a cluster on three machines."
)
NOTE_ARGS=()
for n in "${NOTES[@]}"; do NOTE_ARGS+=(--note "$n"); done
PREAMBLE_ARGS=()
for p in "${PREAMBLE[@]}"; do PREAMBLE_ARGS+=(--preamble "$p"); done

if [[ $DOCS == 1 ]]; then
  PAGE="$ROOT/docs/benchmarks.md"
  PLOTS=(--plots-dir "$ROOT/docs/benchmarks")
else
  PAGE="$RESULTS/benchmarks.md"
  PLOTS=()
fi
"$BENCH" summarize --results "$RESULTS" --out "$PAGE" "${PLOTS[@]}" \
  "${PREAMBLE_ARGS[@]}" "${NOTE_ARGS[@]}"
log "summary: $PAGE"
log "results: $RESULTS"
exit "$FAILED"
