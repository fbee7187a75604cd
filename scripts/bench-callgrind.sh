#!/usr/bin/env bash
# Instructions per steady rotation, counted (not timed) with callgrind: a deterministic figure
# that does not depend on the machine's speed or load. Makes N file-store integrations on a
# local netsuite-sim (one account), bootstraps every store with `rotate --all` and rotates them
# once more (so each holds a current token and a revoked previous one, as a daemon's stores do
# from then on), then counts the instructions of one steady `rotate --all` over all N
# (`revoke_after = "0s"`: issue, stage, verify, promote, revoke) and of one over a config of a
# single such integration, and prints (I_N - I_1) / (N - 1): what one more steady rotation
# costs, start-up, config parsing of the fixed part and runtime set-up cancelled out.
# Usage: scripts/bench-callgrind.sh [N] (default 40).
# Environment: BENCH_SKIP_BUILD=1; BENCH_CALLGRIND_OUT=DIR keeps the two callgrind.out files
# there, for `callgrind_annotate DIR/callgrind.N.out`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

n="${1:-40}"
((n >= 2)) || {
    echo "N must be at least 2" >&2
    exit 2
}
command -v valgrind >/dev/null || {
    echo "valgrind is not installed (Debian package valgrind)" >&2
    exit 1
}

build_release
# Integration i of the seed is int-i; the single-integration config uses int-N, its own record.
write_seed "$work/seed.toml" 1 $((n + 1))
start_sim "$work/seed.toml"
mkdir -p "$work/store" "$work/store1"
# One rotation at a time: callgrind runs threads one after another anyway, and a fixed order
# keeps the count repeatable.
write_config "$work/many.toml" 1 "$n" "$sim_url" "$work/store" "0 0 3 * * Sun" "127.0.0.1:0" 1 1
write_config "$work/one.toml" 1 $((n + 1)) "$sim_url" "$work/store1" "0 0 3 * * Sun" "127.0.0.1:0" 1 1
# Keep only the last integration (int-N) in the single config.
python3 - "$work/one.toml" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
text = open(path).read()
head, *blocks = text.split("[[integrations]]\n")
open(path, "w").write(head + "[[integrations]]\n" + blocks[n])
PY

rotate() {
    local config="$1" label="$2"
    "$rotator" --config "$config" rotate --all </dev/null >"$work/$label.out" 2>"$work/$label.err" || {
        echo "$label: rotate --all failed" >&2
        tail -5 "$work/$label.out" "$work/$label.err" >&2
        exit 1
    }
}

for config in many one; do
    rotate "$work/$config.toml" "$config-bootstrap"
    rotate "$work/$config.toml" "$config-warm"
done

out_dir="${BENCH_CALLGRIND_OUT:-$work}"
mkdir -p "$out_dir"

# count CONFIG ROTATIONS LABEL: instructions of one steady `rotate --all` under callgrind.
count() {
    local config="$1" expected="$2" label="$3" file rotated
    file="$out_dir/callgrind.$label.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no \
        "$rotator" --config "$config" rotate --all </dev/null >"$work/cg.out" 2>"$work/cg.err" || {
        echo "callgrind of $label: rotate --all failed" >&2
        tail -5 "$work/cg.out" "$work/cg.err" >&2
        exit 1
    }
    rotated="$(grep -c ': rotated (rotation ' "$work/cg.out" || true)"
    if ((rotated != expected)); then
        echo "callgrind of $label: $rotated of $expected rotated" >&2
        exit 1
    fi
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

# sim_requests: the simulator's NetSuite request counts, as JSON.
sim_requests() {
    python3 -c 'import json, sys, urllib.request
r = json.load(urllib.request.urlopen(sys.argv[1] + "/sim/inspect"))["requests"]
print(json.dumps({k: v for k, v in r.items() if k not in ("sim", "not_found")}))' "$sim_url"
}

requests_before="$(sim_requests)"
i_many="$(count "$work/many.toml" "$n" "$n")"
requests_after="$(sim_requests)"
i_one="$(count "$work/one.toml" 1 1)"

awk -v n="$n" -v many="$i_many" -v one="$i_one" 'BEGIN {
    printf "rotate --all, %d integrations: %d instructions\n", n, many
    printf "rotate --all, 1 integration:   %d instructions\n", one
    printf "instructions per steady rotation: %.0f\n", (many - one) / (n - 1)
}'
python3 - "$requests_before" "$requests_after" "$n" <<'PY'
import json, sys
before, after, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
calls = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
detail = ", ".join(f"{k} {v / n:g}" for k, v in sorted(calls.items()))
print(f"NetSuite calls per steady rotation: {sum(calls.values()) / n:g} ({detail})")
PY
