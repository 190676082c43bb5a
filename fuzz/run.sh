#!/usr/bin/env bash
# Runs one fuzz target for a while: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
#
#   fuzz/run.sh decode 600
#   fuzz/run.sh lifecycle 600
#   fuzz/run.sh session 600
#   fuzz/run.sh hosted 600
#
# Targets are shims into tether_proto::fuzzing (see src/fuzzing/ in proto); the
# corpus in fuzz/corpus/TARGET is read and grown in place, crashes land in
# fuzz/artifacts/TARGET. Replay one with `cargo fuzz run TARGET --sanitizer none
# fuzz/artifacts/TARGET/crash-…`, or drop it in the corpus and run
# `cargo test -p tether-tests --test fuzz_corpus`.
#
# Toolchain: the stable toolchain with `--sanitizer none` (no AddressSanitizer):
# the crate is `unsafe`-free, so what the fuzzer hunts is panics, and those need
# no sanitizer. cargo-fuzz passes nightly-only `-Z` flags when a sanitizer is on;
# to add AddressSanitizer anyway on stable, run with RUSTC_BOOTSTRAP=1 and drop
# `--sanitizer none`:
#
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET -- -max_total_time=SECONDS
#
# Minimise the corpus after a run with `cargo fuzz cmin TARGET --sanitizer none`.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer flags…]   (targets: decode lifecycle session hosted)" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

cd "$(dirname "$0")"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
mkdir -p "corpus/$target"
exec cargo fuzz run "$target" --sanitizer none -- -max_total_time="$seconds" "$@"
