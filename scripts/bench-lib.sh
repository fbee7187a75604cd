# Shared by scripts/bench-*.sh (sourced, not run): release build, the simulator, fleet
# configs, and clean-up of everything started. Only 127.0.0.1 is used.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
# release for figures; debug in CI's smoke run (the build the tests already made).
profile="${BENCH_PROFILE:-release}"
rotator="${BENCH_ROTATOR:-$CARGO_TARGET_DIR/$profile/netsuite-token-rotator}"
sim_bin="${BENCH_SIM:-$CARGO_TARGET_DIR/$profile/netsuite-sim}"

work="$(mktemp -d "${TMPDIR:-/tmp}/ntr-bench.XXXXXX")"
started_pids=()
extra_cleanup=()

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work" "${extra_cleanup[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_release() {
    if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
        if [[ "$profile" == release ]]; then
            (cd "$repo" && cargo build --release --quiet --bins) </dev/null
        else
            (cd "$repo" && cargo build --quiet --bins) </dev/null
        fi
    fi
}

# GNU time with -v: Debian's `time` package.
gnu_time() {
    if [[ -x /usr/bin/time ]] && /usr/bin/time -v true 2>/dev/null; then
        echo /usr/bin/time
    else
        echo ""
    fi
}

# write_seed FILE ACCOUNTS INTEGRATIONS: one role and one user per account, INTEGRATIONS
# integration records spread round-robin (integration i lives in account i % ACCOUNTS).
write_seed() {
    local file="$1" accounts="$2" n="$3" a i
    {
        for ((a = 0; a < accounts; a++)); do
            printf '[[accounts]]\nid = "%d"\ncompany_name = "Bench %d"\n' $((9000000 + a)) "$a"
            printf '[[accounts.roles]]\nid = "1001"\nname = "Token Rotation"\n'
            printf '[[accounts.users]]\nentity_id = "42"\nemail = "bench%d@example.com"\npassword = "bench-password-%d"\nroles = ["1001"]\n' "$a" "$a"
            for ((i = a; i < n; i += accounts)); do
                printf '[[accounts.integrations]]\nname = "int-%d"\nconsumer_key = "bench-consumer-key-%08d"\nconsumer_secret = "bench-consumer-secret-%08d"\n' "$i" "$i" "$i"
            done
        done
    } >"$file"
}

# write_config FILE ACCOUNTS INTEGRATIONS BASE_URL STORE_DIR SCHEDULE LISTEN GLOBAL PER_ACCOUNT
write_config() {
    local file="$1" accounts="$2" n="$3" base="$4" store="$5" schedule="$6" listen="$7"
    local global="$8" per_account="$9" i a
    {
        printf '[daemon]\nlisten = "%s"\nmax_concurrent_rotations = %d\nmax_concurrent_per_account = %d\n' \
            "$listen" "$global" "$per_account"
        printf '[telemetry]\nlog_format = "text"\n'
        for ((i = 0; i < n; i++)); do
            a=$((i % accounts))
            printf '[[integrations]]\nname = "int-%d"\naccount_id = "%d"\nendpoint = "%s"\n' "$i" $((9000000 + a)) "$base"
            printf 'consumer_key = "bench-consumer-key-%08d"\nconsumer_secret = "bench-consumer-secret-%08d"\n' "$i" "$i"
            printf 'schedule = "%s"\nrevoke_after = "0s"\n' "$schedule"
            printf '[integrations.login]\nemail = "bench%d@example.com"\npassword = "bench-password-%d"\nrole = "1001"\n' "$a" "$a"
            printf '[integrations.store]\nkind = "file"\npath = "%s/int-%d.json"\n' "$store" "$i"
        done
    } >"$file"
    # The config holds literal (benchmark) secrets: only its owner may read it, or `run` refuses.
    chmod 600 "$file"
}

# start_sim SEED: starts netsuite-sim on a free port, sets sim_url.
start_sim() {
    local seed="$1" line
    "$sim_bin" --seed "$seed" --listen 127.0.0.1:0 </dev/null >"$work/sim.out" 2>"$work/sim.err" &
    started_pids+=("$!")
    sim_pid=$!
    for _ in $(seq 1 200); do
        line="$(head -n1 "$work/sim.out" 2>/dev/null || true)"
        if [[ "$line" == "netsuite-sim listening on http://"* ]]; then
            sim_url="${line#netsuite-sim listening on }"
            return 0
        fi
        if ! kill -0 "$sim_pid" 2>/dev/null; then
            echo "netsuite-sim exited: $(cat "$work/sim.err")" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "netsuite-sim did not start" >&2
    return 1
}

# free_port: a port nothing listens on right now, from the kernel.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Clock ticks per second for /proc/PID/stat CPU times.
clk_tck="$(getconf CLK_TCK)"

# cpu_seconds PID: user+system CPU seconds of a live process.
cpu_seconds() {
    awk -v tck="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / tck }' "/proc/$1/stat"
}

# status_field PID NAME: a field of /proc/PID/status (numbers only).
status_field() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
