#!/usr/bin/env bash
# Instructions per operation of every icount case, under callgrind.
#
#   bench/icount.sh [N] [CASE...]     (default N=2000, every case)
#
# Runs target/release/icount CASE N under `valgrind --tool=callgrind` with
# collection on only inside `icount::measured` (N operations after a warm-up,
# inputs prepared beforehand) and prints "case instructions_per_op", one a line.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
shift || true
cargo build --release -q -p tether-bench --bin icount
BIN=${CARGO_TARGET_DIR:-target}/release/icount
if [ $# -gt 0 ]; then CASES=("$@"); else mapfile -t CASES < <("$BIN" list); fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for case in "${CASES[@]}"; do
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$case.out" \
    --toggle-collect='icount::measured' "$BIN" "$case" "$N" >/dev/null 2>"$OUT/$case.log" || {
    cat "$OUT/$case.log" >&2; exit 1; }
  total=$(grep -E '^(summary|totals):' "$OUT/$case.out" | head -1 | awk '{print $2}')
  awk -v c="$case" -v t="$total" -v n="$N" 'BEGIN { printf "%s %.0f\n", c, t / n }'
done
