#!/usr/bin/env bash
# Write system calls of N pipelined sends on one connection, tether-mio's
# Reactor against tether-tokio (issue 12, point 8): `strace -f -c` counts
# write, sendto, sendmsg and writev of the client process and its threads
# while `pipelined` keeps WINDOW sends in flight until SENDS are acked, against
# the reference broker (`tether broker --open`) in another process. Uses only
# what is installed: cargo, strace (skips with a note when strace is missing).
#
#   bench/syscalls.sh [SENDS] [WINDOW]      # defaults: 20000 64
set -euo pipefail
cd "$(dirname "$0")/.."
SENDS=${1:-20000}
WINDOW=${2:-64}
TARGET=${CARGO_TARGET_DIR:-target}
if ! command -v strace >/dev/null 2>&1; then
  echo "strace is not installed: write system calls not counted (apt-get install strace)"
  exit 0
fi
cargo build --release -q -p tether-bench --bin pipelined
cargo build --release -q -p tether-cli
log=$(mktemp)
out=$(mktemp)
"$TARGET/release/tether" broker --open --listen 127.0.0.1:0 2>"$log" &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; rm -f "$log" "$out"' EXIT
url=
for _ in $(seq 100); do
  url=$(sed -n 's/.*broker listening on \(ws:[^ ]*\).*/\1/p' "$log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the broker did not start:"; cat "$log"; exit 1; }
echo "$SENDS pipelined sends, $WINDOW in flight, one connection, broker at $url"
echo
echo "| host | write system calls (write, sendto, sendmsg, writev) | per send | the run |"
echo "|---|---|---|---|"
for host in mio tokio; do
  run=$(strace -f -c -o "$out" -e trace=write,sendto,sendmsg,writev \
    "$TARGET/release/pipelined" "$host" "$url" "$SENDS" "$WINDOW")
  calls=$(awk '$NF == "total" { print $4 }' "$out")
  per=$(awk -v c="$calls" -v n="$SENDS" 'BEGIN { printf "%.3f", c / n }')
  echo "| tether-$host | $calls | $per | $run |"
done
