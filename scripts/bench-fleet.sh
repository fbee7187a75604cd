#!/usr/bin/env bash
# Fleet throughput: `rotate --all` over N integrations (file stores) spread over several
# accounts of a local netsuite-sim, twice (bootstrap, then steady state); reports wall time,
# rotations/s, CPU per rotation and peak RSS of the rotator for each pass.
# Usage: scripts/bench-fleet.sh [N] (default 10000).
# Environment: BENCH_ACCOUNTS (default 10), BENCH_GLOBAL (max_concurrent_rotations, default
# 32), BENCH_PER_ACCOUNT (max_concurrent_per_account, default 8), BENCH_SKIP_BUILD=1,
# BENCH_STORE_DIR (a folder for the file stores; default a temp folder; a tmpfs one such as
# /dev/shm/x takes the disk's fsync cost out of the figures).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

n="${1:-10000}"
accounts="${BENCH_ACCOUNTS:-10}"
global="${BENCH_GLOBAL:-32}"
per_account="${BENCH_PER_ACCOUNT:-8}"
((accounts > n)) && accounts="$n"

build_release
write_seed "$work/seed.toml" "$accounts" "$n"
start_sim "$work/seed.toml"
store="$work/store"
if [[ -n "${BENCH_STORE_DIR:-}" ]]; then
    store="$(mktemp -d "$BENCH_STORE_DIR/ntr-bench-store.XXXXXX")"
    extra_cleanup+=("$store")
fi
mkdir -p "$store"
write_config "$work/config.toml" "$accounts" "$n" "$sim_url" "$store" "0 0 3 * * Sun" \
    "127.0.0.1:0" "$global" "$per_account"

timer="$(gnu_time)"
[[ -n "$timer" ]] || echo "note: /usr/bin/time (Debian package 'time') missing: no CPU or peak RSS figures" >&2

# run_pass LABEL: one timed `rotate --all`, and its figures.
run_pass() {
    local label="$1" status=0 rotated start_ns end_ns sim_cpu_before sim_cpu_after
    sim_cpu_before="$(cpu_seconds "$sim_pid")"
    start_ns="$(date +%s%N)"
    if [[ -n "$timer" ]]; then
        "$timer" -v -o "$work/time.txt" "$rotator" --config "$work/config.toml" rotate --all \
            </dev/null >"$work/rotate.out" 2>"$work/rotate.err" || status=$?
    else
        "$rotator" --config "$work/config.toml" rotate --all </dev/null >"$work/rotate.out" 2>"$work/rotate.err" || status=$?
    fi
    end_ns="$(date +%s%N)"
    sim_cpu_after="$(cpu_seconds "$sim_pid")"

    rotated="$(grep -c ': rotated (rotation ' "$work/rotate.out" || true)"
    if ((status != 0 || rotated != n)); then
        echo "$label: rotate --all exited $status with $rotated of $n rotated" >&2
        grep -v ': rotated (rotation ' "$work/rotate.out" | head -5 >&2 || true
        tail -5 "$work/rotate.err" >&2 || true
        exit 1
    fi

    awk -v label="$label" -v n="$n" -v ns=$((end_ns - start_ns)) -v sb="$sim_cpu_before" -v sa="$sim_cpu_after" '
    BEGIN {
        wall = ns / 1e9
        printf "%s\n", label
        printf "  wall time          %.2f s\n", wall
        printf "  rotations/s        %.0f\n", n / wall
        printf "  simulator CPU      %.2f s (%.3f ms/rotation)\n", sa - sb, (sa - sb) * 1000 / n
    }'
    if [[ -f "$work/time.txt" ]]; then
        awk -v n="$n" -F': ' '
        /User time/ { user = $2 } /System time/ { sys = $2 } /Maximum resident/ { rss = $2 }
        END {
            printf "  rotator CPU        %.2f s user + %.2f s system = %.3f ms/rotation\n", user, sys, (user + sys) * 1000 / n
            printf "  rotator peak RSS   %.1f MiB (%.2f KiB/integration)\n", rss / 1024, rss / n
        }' "$work/time.txt"
        rm -f "$work/time.txt"
    fi
}

echo "fleet: $n integrations, $accounts accounts, max_concurrent_rotations $global, per account $per_account"
# The first pass creates every store (directory entries, lock and state files): a new
# integration's first rotation. The second rotates tokens the stores already hold, and revokes
# the replaced ones (revoke_after = 0s): the daemon's work from then on.
run_pass "pass 1, bootstrap (every store created)"
run_pass "pass 2, steady state (every store rotated again, old token revoked)"
