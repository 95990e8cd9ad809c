#!/usr/bin/env bash
# THE test command for phxq: installs what the compatibility suite needs (if missing),
# builds the workspace once, checks formatting and clippy, runs every crate's tests (including the rdkafka
# integration tests) and the pytest suite that drives the phxq binary with real
# clients (kcat, confluent-kafka, kafka-python, aiokafka, kafkajs).
#
#   bash compat-tests/run.sh [extra pytest args, e.g. -k roundtrip]
#
# Needs: cargo, python3 (>= 3.11 with venv/pip), node + npm; apt-get for kcat and chromium.
# Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# ---------------------------------------------------------------- tools
if ! command -v kcat >/dev/null 2>&1; then
    step "installing kcat (apt)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat
fi

# test_console.py loads the web console in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
    step "installing chromium (apt)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

REQ="compat-tests/python/requirements.txt"
STAMP=".venv/.phxq-requirements"
if [ ! -x .venv/bin/python ] || ! cmp -s "$REQ" "$STAMP"; then
    step "python venv (.venv) with $REQ"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
fi

if [ ! -d compat-tests/js/node_modules ] || [ compat-tests/js/package-lock.json -nt compat-tests/js/node_modules ]; then
    step "npm ci (kafkajs + codecs)"
    (cd compat-tests/js && npm ci --no-audit --no-fund --loglevel=error)
    touch compat-tests/js/node_modules
fi

# ---------------------------------------------------------------- build
# --all-targets builds the test binaries in the same invocation, with the same
# feature set (the rdkafka tests enable librdkafka's zstd, which changes features of
# shared dependencies), so `cargo test` below reuses everything instead of
# rebuilding half the workspace.
step "cargo build --release --workspace --all-targets"
cargo build --release --workspace --all-targets
export PHXQ_BIN="$ROOT/target/release/phxq"
[ -x "$PHXQ_BIN" ] || { echo "no broker binary at $PHXQ_BIN" >&2; exit 1; }

# ---------------------------------------------------------------- lint
# Formatting and clippy keep the code clean; a failure fails the run (after the tests,
# so that their results are still shown). clippy checks with its own (check-mode)
# artifacts: about a minute from cold, seconds when only phxq's crates changed.
status=0
step "cargo fmt --all --check"
cargo fmt --all --check || status=1
step "cargo clippy --release --workspace --all-targets -- -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings || status=1

# ---------------------------------------------------------------- tests
step "cargo test --release --workspace (unit tests + rdkafka integration tests)"
# --no-fail-fast: a failing crate must not hide the results of the others
cargo test --release --workspace --no-fail-fast || status=1

step "pytest compat-tests/python"
.venv/bin/python -m pytest compat-tests/python -v -p no:cacheprovider "$@" || status=1

step "done: $([ $status -eq 0 ] && echo PASSED || echo FAILED) in $(( $(date +%s) - START ))s"
exit $status
