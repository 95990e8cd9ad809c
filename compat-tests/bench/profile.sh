#!/usr/bin/env bash
# Where the broker's time goes: runs one produce workload against a fresh single-node
# `phxq serve` while `perf record` samples the broker, then writes the broker's CPU split
# by thread and its hottest symbols (self time) to bench-results/profile-<time>/profile.md,
# next to the raw perf.data (open it with `perf report -i`).
#
# Usage: compat-tests/bench/profile.sh [--port PORT] [--record-size N] [--secs N]
#   --port PORT        broker port on 127.0.0.1 (default 47192; must be free)
#   --record-size N    produce record size in bytes (default 1024: the produce-1k workload)
#   --secs N           seconds sampled, after 4 s of warm-up (default 6)
#
# Needs perf (linux-perf). Timings are not asserted anywhere: this is for reading.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PORT=47192
SIZE=1024
SECS=6
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="$2"; shift ;;
    --record-size) SIZE="$2"; shift ;;
    --secs) SECS="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 2; }

cargo build --release --workspace
PHXQ="$ROOT/target/release/phxq"
BENCH="$ROOT/target/release/phxq-bench"
OUT="$ROOT/bench-results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/phxq-profile.XXXXXX")
BROKER=""
cleanup() {
  [[ -n "$BROKER" ]] && kill -TERM "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
  rm -rf "$DATA"
}
trap cleanup EXIT

NO_COLOR=1 "$PHXQ" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$OUT/broker.log" 2>&1 &
BROKER=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

"$BENCH" --bootstrap "127.0.0.1:$PORT" --out-dir "$OUT" --broker-pid "$BROKER" --label "profile-$SIZE" \
  produce --topic profile --record-size "$SIZE" --records 100000000 --producers 1 --partitions 1 \
  --acks all --max-seconds $((SECS + 8)) >"$OUT/bench.log" 2>&1 &
LOAD=$!
sleep 4
perf record -F 999 -g -p "$BROKER" -o "$OUT/perf.data" -- sleep "$SECS" >/dev/null 2>&1
wait "$LOAD" || true

{
  echo "# Broker profile: produce ${SIZE} B records, 1 producer, acks=all"
  echo
  echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), ${SECS} s sampled at 999 Hz after 4 s of warm-up."
  echo
  grep -h -E '^\| (records/s|MB/s|broker_cpu_cores|client_cpu_cores) ' "$OUT"/profile-*.md || true
  echo
  echo "## Samples by thread"
  echo
  echo '```'
  perf report -i "$OUT/perf.data" --no-children --sort comm -g none 2>/dev/null | grep -E '^ +[0-9]' | head -10
  echo '```'
  echo
  echo "## Hottest symbols (self time)"
  echo
  echo '```'
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -25 | sed 's/ \{2,\}/  /g'
  echo '```'
} >"$OUT/profile.md"
echo "wrote $OUT/profile.md"
