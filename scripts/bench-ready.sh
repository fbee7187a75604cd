#!/usr/bin/env bash
# Start to ready: from spawning `run` with N integrations (default 100; stores already hold a
# current token, so start-up only recovers and schedules) until `/readyz` answers 200.
# Usage: scripts/bench-ready.sh [RUNS] (default 10; CI's short mode uses 1).
# Environment: BENCH_INTEGRATIONS (default 100), BENCH_SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

runs="${1:-10}"
n="${BENCH_INTEGRATIONS:-100}"
accounts=$((n < 10 ? n : 10))

build_release
write_seed "$work/seed.toml" "$accounts" "$n"
start_sim "$work/seed.toml"
mkdir -p "$work/store"
port="$(free_port)"
write_config "$work/config.toml" "$accounts" "$n" "$sim_url" "$work/store" "0 0 3 * * Sun" \
    "127.0.0.1:$port" 32 8
"$rotator" --config "$work/config.toml" rotate --all </dev/null >"$work/bootstrap.out" 2>&1 || {
    echo "bootstrap rotate --all failed:" >&2
    tail -5 "$work/bootstrap.out" >&2
    exit 1
}

# Python spawns the daemon and polls /readyz every millisecond: bash plus curl would measure
# curl's own start-up.
python3 - "$rotator" "$work/config.toml" "$port" "$runs" "$n" </dev/null <<'PY'
import http.client, signal, statistics, subprocess, sys, time

rotator, config, port, runs, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def ready():
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False

times = []
for _ in range(runs):
    start = time.perf_counter()
    proc = subprocess.Popen([rotator, "--config", config, "run"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready():
            if proc.poll() is not None:
                sys.exit(f"the daemon exited with {proc.returncode} before it was ready")
            if time.perf_counter() - start > 30:
                sys.exit("not ready within 30 s")
            time.sleep(0.001)
        times.append((time.perf_counter() - start) * 1000)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

print(f"start to ready: {n} integrations, {runs} runs")
print(f"median             {statistics.median(times):.1f} ms")
print(f"min / max          {min(times):.1f} / {max(times):.1f} ms")
PY
