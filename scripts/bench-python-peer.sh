#!/usr/bin/env bash
# The rotator against a Python peer (benches/python_peer/rotate.py: requests + requests-oauthlib,
# an atomic JSON file per integration, four threads), both against one local netsuite-sim, for
# the same number of steady rotations (each integration already holds a current token, which
# its rotation replaces and revokes). Each side bootstraps its own N integrations first (not
# measured), then runs of N rotations each are measured under /usr/bin/time -v, the two sides
# taking turns; prints the median run's CPU (user + system) per rotation and peak RSS of each,
# and the two ratios Python/Rust.
# Usage: scripts/bench-python-peer.sh [N] (default 200).
# Environment: BENCH_RUNS (measured runs of each side, default 3; the median is reported),
# BENCH_THREADS (the peer's threads and the rotator's max_concurrent_rotations and
# max_concurrent_per_account, default 4), BENCH_STORE_DIR (a folder for both sides' files,
# e.g. /dev/shm for tmpfs, which takes the disk's sync cost out), BENCH_SKIP_BUILD=1,
# BENCH_PYTHON (default the repo's .venv/bin/python, into which requests and
# requests-oauthlib are installed if missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

n="${1:-200}"
threads="${BENCH_THREADS:-4}"
runs="${BENCH_RUNS:-3}"
python="${BENCH_PYTHON:-$repo/.venv/bin/python}"

if [[ ! -x "$python" ]]; then
    python3 -m venv "$repo/.venv"
fi
if ! "$python" -c 'import requests, requests_oauthlib' 2>/dev/null; then
    "$python" -m pip install --quiet requests requests-oauthlib </dev/null
fi
timer="$(gnu_time)"
[[ -n "$timer" ]] || {
    echo "/usr/bin/time (Debian package 'time') is needed for CPU and peak RSS" >&2
    exit 1
}

build_release
# One account, 2N integration records: int-0 .. int-(N-1) for the rotator, the rest the peer's.
write_seed "$work/seed.toml" 1 $((2 * n))
start_sim "$work/seed.toml"
stores="$work"
if [[ -n "${BENCH_STORE_DIR:-}" ]]; then
    stores="$(mktemp -d "$BENCH_STORE_DIR/ntr-bench-peer.XXXXXX")"
    extra_cleanup+=("$stores")
fi
mkdir -p "$stores/store" "$stores/peer-store"
write_config "$work/config.toml" 1 "$n" "$sim_url" "$stores/store" "0 0 3 * * Sun" "127.0.0.1:0" \
    "$threads" "$threads"
"$python" - "$work/peer.json" "$n" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
json.dump([
    {
        "name": f"int-{i}",
        "account": "9000000",
        "consumer_key": f"bench-consumer-key-{i:08d}",
        "consumer_secret": f"bench-consumer-secret-{i:08d}",
        "email": "bench0@example.com",
        "password": "bench-password-0",
        "role": "1001",
    }
    for i in range(n, 2 * n)
], open(path, "w"))
PY

# The two measured programs, as commands GNU time can run.
printf '#!/bin/sh\nexec "%s" --config "%s" rotate --all\n' "$rotator" "$work/config.toml" >"$work/rust"
printf '#!/bin/sh\nexec "%s" "%s" --base "%s" --integrations "%s" --store "%s" --threads %d\n' \
    "$python" "$repo/benches/python_peer/rotate.py" "$sim_url" "$work/peer.json" \
    "$stores/peer-store" "$threads" >"$work/peer"
chmod +x "$work/rust" "$work/peer"

# measure NAME: runs NAME once under /usr/bin/time; checks every integration rotated; prints
# "CPU_SECONDS PEAK_KIB".
measure() {
    local name="$1" status=0 rotated
    "$timer" -v -o "$work/$name.time" "$work/$name" </dev/null >"$work/$name.out" 2>"$work/$name.err" || status=$?
    rotated="$(grep -c ': rotated (' "$work/$name.out" || true)"
    if ((status != 0 || rotated != n)); then
        echo "$name exited $status with $rotated of $n rotated" >&2
        grep -v ': rotated (' "$work/$name.out" | head -5 >&2 || true
        tail -5 "$work/$name.err" >&2 || true
        exit 1
    fi
    awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
        END { printf "%.3f %d %.3f %.3f\n", u + s, r, u, s }' "$work/$name.time"
}

# Bootstrap both (first tokens), not measured.
measure rust >/dev/null
measure peer >/dev/null
for ((run = 0; run < runs; run++)); do
    measure rust >>"$work/rust.runs"
    measure peer >>"$work/peer.runs"
done
# median FILE: the run (line) with the median CPU.
median() {
    sort -n "$1" | sed -n "$(((runs + 1) / 2))p"
}
read -r rust_cpu rust_rss rust_user rust_sys <<<"$(median "$work/rust.runs")"
read -r peer_cpu peer_rss peer_user peer_sys <<<"$(median "$work/peer.runs")"

awk -v n="$n" -v rc="$rust_cpu" -v rr="$rust_rss" -v pc="$peer_cpu" -v pr="$peer_rss" -v t="$threads" \
    -v ru="$rust_user" -v rs="$rust_sys" -v pu="$peer_user" -v ps="$peer_sys" -v runs="$runs" 'BEGIN {
    printf "%d steady rotations each, %d at a time, one netsuite-sim; the median of %d runs\n", n, t, runs
    printf "  rotator:     %.3f ms CPU per rotation (%.3f user + %.3f system), peak RSS %.1f MiB\n", rc * 1000 / n, ru * 1000 / n, rs * 1000 / n, rr / 1024
    printf "  python peer: %.3f ms CPU per rotation (%.3f user + %.3f system), peak RSS %.1f MiB\n", pc * 1000 / n, pu * 1000 / n, ps * 1000 / n, pr / 1024
    printf "CPU per rotation, Python/Rust: %.2fx\n", pc / rc
    printf "peak memory, Python/Rust:      %.2fx\n", pr / rr
}'
