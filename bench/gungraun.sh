#!/usr/bin/env bash
# Instructions per operation of every icount case, counted by gungraun.
#
#   bench/gungraun.sh [EXTRA ARGS FOR THE BENCH HARNESS...]
#
# Installs gungraun-runner at the version of the gungraun library in Cargo.lock
# (the two must match) unless that version is already on PATH, then runs the
# `instructions` bench of tether-bench (benches/instructions.rs, one operation of
# each case of src/cases.rs, setup and warm-up uncounted) under callgrind. The
# output is printed and kept in target/bench-results/gungraun.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(awk '/^name = "gungraun"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$VERSION" ]; then
  echo "gungraun.sh: no gungraun package in Cargo.lock" >&2
  exit 1
fi
have=$(gungraun-runner --version 2>/dev/null | awk '{ print $NF }' || true)
if [ "$have" != "$VERSION" ]; then
  echo "gungraun.sh: installing gungraun-runner $VERSION (found: ${have:-none})" >&2
  cargo install --locked gungraun-runner --version "$VERSION"
fi

OUT=${CARGO_TARGET_DIR:-target}/bench-results/gungraun.txt
mkdir -p "$(dirname "$OUT")"
cargo bench -p tether-bench --features gungraun --bench instructions -- "$@" 2>&1 | tee "$OUT"
echo "gungraun.sh: output in $OUT" >&2
