#!/usr/bin/env bash
# Runs every tether benchmark once and rewrites the generated parts of
# BENCHMARKS.md: the opening table (between the goals:begin / goals:end markers)
# and the details (between bench:begin / bench:end); the other sections are kept. Needs cargo, valgrind, node + npm (installs bench/node's packages),
# taskset and /usr/bin/time; bench/gungraun.sh installs gungraun-runner. About
# 15 minutes on the project's 2-core machine. Honours CARGO_TARGET_DIR.
#
#   bench/run.sh            # everything
#   QUICK=1 bench/run.sh    # a smoke run: short criterion times, fewer rounds
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
R=$T/release
OUT=$T/bench-results
mkdir -p "$OUT"
# Rows of the opening table written by other blocks of this script (one
# markdown table row a line, any file name; report.rs appends them in name order).
rm -rf "$OUT/goals"
mkdir -p "$OUT/goals"
QUICK=${QUICK:-}

echo "== machine"
model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "$(nproc) cores, ${model:-unknown CPU}, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr)" | tee "$OUT/machine.txt"

echo "== build"
cargo build --release -q -p tether-bench --bins
cargo build --release -q -p tether-cli --bin tether

echo "== node runner (the seeds' client)"
( cd bench/node && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; \
  else npm install --no-audit --no-fund --loglevel=error; fi && node prepare-seed.mjs )

echo "== allocations (counting allocator)"
cargo test -q --release -p tether-bench --test alloc -- --nocapture 2>&1 | tee "$OUT/alloc.txt"

echo "== criterion: step costs"
if [ -n "$QUICK" ]; then CRIT=(--warm-up-time 0.2 --measurement-time 0.5); else CRIT=(--warm-up-time 1 --measurement-time 3); fi
cargo bench -q -p tether-bench --bench step -- "${CRIT[@]}" | tee "$OUT/criterion.txt"

echo "== callgrind: instructions per operation"
if [ -n "$QUICK" ]; then N=200; else N=2000; fi
bench/icount.sh "$N" | tee "$OUT/icount.txt"

echo "== gungraun: the same counts through gungraun (installs gungraun-runner)"
bench/gungraun.sh

echo "== client CPU per acked send (each client its own process, the broker in another)"
if [ -n "$QUICK" ]; then CPU=(--rounds 1 --sends 2000 --warmup 500 --icount 500); else CPU=(--rounds 5 --icount 5000); fi
"$R/cpu" "${CPU[@]}" --broker "$R/tether" --node bench/node --json "$OUT/cpu.json"

echo "== loopback"
if [ -n "$QUICK" ]; then LB=(--quick --rounds 3); else LB=(--rounds 5); fi
# One at a time is cheap (2 000 sends a round) and its spread at 5 rounds was
# ±5 %: the pinned latency runs take 21.
if [ -n "$QUICK" ]; then LAT=(--quick --rounds 3); else LAT=(--rounds 21); fi
taskset -c 0 "$R/loopback" "${LAT[@]}" --only latency --node bench/node --json "$OUT/latency.json"
"$R/loopback" "${LB[@]}" --only throughput --node bench/node --json "$OUT/throughput.json"
taskset -c 0 "$R/loopback" "${LAT[@]}" --only blocking-latency --json "$OUT/blocking-latency.json"
"$R/loopback" "${LB[@]}" --only blocking --json "$OUT/blocking.json"

echo "== peak RSS of tether demo"
: > "$OUT/rss.txt"
for _ in 1 2 3; do
  /usr/bin/time -v "$R/tether" demo >/dev/null 2>"$OUT/time.txt"
  sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$OUT/time.txt" | tee -a "$OUT/rss.txt"
done

# Other blocks add rows to the opening table by writing "$OUT/goals/NAME.md"
# (markdown table rows: goal | tether | baseline | ratio | command | met/missed).
# ---- storm's block (helper "storm"): memory per idle connection, write system
# calls, the storm at internet scale. Their figures go into BENCHMARKS.md's own
# sections by hand (with these commands) and rows of the opening table into
# "$OUT/goals/storm.md"; the storm redraws bench/storm.svg.
echo "== memory per idle connection (counting allocators)"
cargo test -q --release -p tether-mio --test memory -- --nocapture 2>&1 | tee "$OUT/memory-mio.txt"
cargo test -q --release -p tether-tests --test idle_memory -- --nocapture 2>&1 | tee "$OUT/memory-tokio.txt"
echo "== write system calls of pipelined sends (strace)"
bench/syscalls.sh 20000 64 | tee "$OUT/syscalls.txt"
echo "== the storm at internet scale (simulation)"
"$R/storm" --svg bench/storm.svg | tee "$OUT/storm.txt"
mio_heap=$(sed -n 's/.*live heap per idle connection: \([0-9]*\) bytes$/\1/p' "$OUT/memory-mio.txt" | tail -1)
read -r tokio_heap bare_heap tokio_ratio < <(sed -n 's/.*live heap per idle connection: tether-tokio \([0-9]*\) B, bare tokio-tungstenite \([0-9]*\) B, ratio \([0-9.]*\)$/\1 \2 \3/p' "$OUT/memory-tokio.txt" | tail -1)
read -r own_heap own_ratio < <(sed -n 's/.*with a configuration each: tether-tokio \([0-9]*\) B, ratio \([0-9.]*\)$/\1 \2/p' "$OUT/memory-tokio.txt" | tail -1)
read -r plain_heap plain_ratio < <(sed -n 's/.*bare tokio-tungstenite over a plain TcpStream: \([0-9]*\) B, tether-tokio \/ it \([0-9.]*\)$/\1 \2/p' "$OUT/memory-tokio.txt" | tail -1)
hint=$(grep "^| tether with the broker's hint" "$OUT/storm.txt" | awk -F'|' '{gsub(/ /,"",$3); gsub(/ /,"",$4); print $3" ("$4" of N/R)"}')
{
  awk -v h="$mio_heap" 'BEGIN { printf "| idle tether-mio connection ≤ 8 KiB, configuration included | %d B | 8 192 B (goal) | %.2f× | `cargo test --release -p tether-mio --test memory -- --nocapture` | %s |\n", h, h / 8192, (h <= 8192 ? "met" : "**missed**") }'
  awk -v t="$tokio_heap" -v b="$bare_heap" -v r="$tokio_ratio" -v o="$own_heap" -v q="$own_ratio" -v p="$plain_heap" -v u="$plain_ratio" 'BEGIN { printf "| idle tether-tokio connection ≤ 1.25× bare tokio-tungstenite, same buffers (clients cloned from one configuration; a configuration each: %d B, %.2f×; against a bare client over a plain `TcpStream`, no inline TLS state: %d B, %.2f×) | %d B | %d B | %.2f× | `cargo test --release -p tether-tests --test idle_memory -- --nocapture` | %s |\n", o, q, p, u, t, b, r, (r <= 1.25 ? "met" : "**missed**") }'
  echo "| storm, 100 000 clients, broker admitting 1 000 hellos/s, tether with the hint: every client open again | ${hint} | N/R = 100 s | see the storm section | \`cargo run --release -p tether-bench --bin storm\` | figure (no goal) |"
} > "$OUT/goals/storm.md"
# ---- end of storm's block

echo "== BENCHMARKS.md"
CRITERION_DIR="$T/criterion" "$R/report" "$OUT" BENCHMARKS.md
echo "done: BENCHMARKS.md rewritten"
