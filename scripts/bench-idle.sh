#!/usr/bin/env bash
# The idle daemon: `run` with 100 and with 10,000 integrations (file stores already holding a
# current token, weekly schedule, so nothing is due once start-up is over). After /readyz
# answers 200 and a settle second, reports RSS, then CPU seconds and context switches (every
# thread, from /proc) over an idle window: the daemon sleeps until the next due time, so the
# switches should stay at zero.
# Usage: scripts/bench-idle.sh [WINDOW_SECONDS] [N...] (default 60 s, 100 and 10000;
# CI's short mode: 5 100). Environment: BENCH_SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

window="${1:-60}"
shift || true
sizes=("$@")
((${#sizes[@]} > 0)) || sizes=(100 10000)

# Context switches summed over the threads of PID.
switches() {
    local pid="$1" kind="$2"
    cat /proc/"$pid"/task/*/status 2>/dev/null | awk -v k="${kind}_ctxt_switches:" '$1 == k { s += $2 } END { print s + 0 }'
}

build_release
rss_by_size=()
for n in "${sizes[@]}"; do
    accounts=$((n < 10 ? n : 10))
    dir="$work/idle-$n"
    mkdir -p "$dir/store"
    write_seed "$dir/seed.toml" "$accounts" "$n"
    start_sim "$dir/seed.toml"
    port="$(free_port)"
    write_config "$dir/config.toml" "$accounts" "$n" "$sim_url" "$dir/store" "0 0 3 * * Sun" \
        "127.0.0.1:$port" 32 8
    "$rotator" --config "$dir/config.toml" rotate --all </dev/null >"$dir/bootstrap.out" 2>&1 || {
        echo "bootstrap rotate --all failed:" >&2
        tail -5 "$dir/bootstrap.out" >&2
        exit 1
    }

    "$rotator" --config "$dir/config.toml" run </dev/null >"$dir/run.out" 2>&1 &
    daemon=$!
    started_pids+=("$daemon")
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
            break
        fi
        kill -0 "$daemon" 2>/dev/null || {
            echo "the daemon exited:" >&2
            tail -5 "$dir/run.out" >&2
            exit 1
        }
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || {
        echo "the daemon was not ready within 60 s" >&2
        exit 1
    }
    # Start-up's file-store work ran on tokio's blocking pool; those threads exit 10 s after
    # their last job (tokio's keep-alive), each with one last wake-up. Measure once they have.
    ready_threads="$(status_field "$daemon" Threads)"
    for _ in $(seq 1 150); do
        (($(ls /proc/"$daemon"/task | wc -l) <= ${BENCH_IDLE_THREADS:-1})) && break
        sleep 0.1
    done

    rss_kib="$(status_field "$daemon" VmRSS)"
    rss_anon_kib="$(status_field "$daemon" RssAnon)"
    threads="$(status_field "$daemon" Threads)"
    cpu_before="$(cpu_seconds "$daemon")"
    vol_before="$(switches "$daemon" voluntary)"
    invol_before="$(switches "$daemon" nonvoluntary)"
    sleep "$window"
    cpu_after="$(cpu_seconds "$daemon")"
    vol_after="$(switches "$daemon" voluntary)"
    invol_after="$(switches "$daemon" nonvoluntary)"
    rss_end_kib="$(status_field "$daemon" VmRSS)"

    awk -v n="$n" -v w="$window" -v rss="$rss_kib" -v t="$threads" -v cb="$cpu_before" \
        -v ca="$cpu_after" -v vb="$vol_before" -v va="$vol_after" -v ib="$invol_before" \
        -v ia="$invol_after" -v re="$rss_end_kib" -v ra="$rss_anon_kib" -v rt="$ready_threads" 'BEGIN {
        printf "idle: %d integrations, %d s window\n", n, w
        printf "threads            %d when ready, %d idle\n", rt, t
        printf "RSS after start-up %.1f MiB (%.1f MiB anonymous)\n", rss / 1024, ra / 1024
        printf "RSS after idling   %.1f MiB\n", re / 1024
        printf "CPU while idle     %.3f s\n", ca - cb
        printf "wake-ups           %d voluntary, %d involuntary context switches\n", va - vb, ia - ib
    }'

    kill "$daemon" "$sim_pid" 2>/dev/null || true
    wait "$daemon" "$sim_pid" 2>/dev/null || true
    rss_by_size+=("$n $rss_kib")
done

# What each integration more costs: the RSS growth from the smallest to the largest fleet.
if ((${#rss_by_size[@]} > 1)); then
    printf '%s\n' "${rss_by_size[@]}" | sort -n | awk '
        NR == 1 { n0 = $1; r0 = $2 } { n1 = $1; r1 = $2 }
        END {
            printf "memory per idle integration (%d -> %d): %.2f KiB\n", n0, n1, (r1 - r0) / (n1 - n0)
        }'
fi
