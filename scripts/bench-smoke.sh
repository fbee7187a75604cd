#!/usr/bin/env bash
# CI's short run of every benchmark script, so they cannot rot: the fleet with 200
# integrations, the idle daemon with 100 integrations for 5 s, start-to-ready once, callgrind's
# count over 4 integrations (about 12 s with the debug build), the Python peer against 20
# rotations once (about 2 s, plus a first `pip install` of requests and requests-oauthlib into
# .venv), and the criterion benches compiled (`cargo build --benches`, the debug profile; with
# BENCH_PROFILE=release, `cargo bench --no-run`). The figures it prints mean little on a
# shared CI machine and nothing fails on them; docs/performance.md keeps the real ones.
# It uses the debug build the test suite already made (BENCH_PROFILE=release for real figures).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export BENCH_PROFILE="${BENCH_PROFILE:-debug}"

if [[ "$BENCH_PROFILE" == release ]]; then
    cargo build --release --quiet --bins </dev/null
else
    cargo build --quiet --bins </dev/null
fi
export BENCH_SKIP_BUILD=1
# valgrind and GNU time (Debian packages), installed if missing.
bash "$here/setup/bench-tools.sh"

echo "== bench-fleet.sh 200"
"$here/bench-fleet.sh" 200
echo "== bench-idle.sh 5 100"
"$here/bench-idle.sh" 5 100
echo "== bench-ready.sh 1"
"$here/bench-ready.sh" 1
echo "== bench-callgrind.sh 4"
"$here/bench-callgrind.sh" 4
echo "== bench-python-peer.sh 20 (one run)"
BENCH_RUNS=1 "$here/bench-python-peer.sh" 20
if [[ "$BENCH_PROFILE" == release ]]; then
    echo "== cargo bench --no-run"
    cargo bench --no-run --quiet </dev/null
else
    echo "== cargo build --benches"
    cargo build --benches --quiet </dev/null
fi
