#!/usr/bin/env bash
# Writes linker/hot-functions.txt: the functions of netsuite-token-rotator that its common work
# runs, for build.rs to have rust-lld lay them out together at
# the start of .text (see build.rs for why: resident code). The work, each run under callgrind
# on a release build against a local netsuite-sim with file stores: the daemon's start-up, a
# /readyz and /metrics scrape and its shutdown; `status` and `status --json`; `rotate --all`
# on empty stores and again on full ones (with the revocation); `verify --all`; and
# `demo --m2m` for the certificate path. Vault and AWS stores are left out (they need their
# servers): their code keeps the default order after the listed functions.
# Regenerate after a dependency or toolchain update, since the names carry their crates'
# hashes; names the binary no longer has are only skipped, so a stale list costs memory, not
# correctness. `--check` prints how many of the listed names the current release binary has.
# Usage: scripts/gen-hot-functions.sh [--check]. Environment: BENCH_SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

list="$repo/linker/hot-functions.txt"
command -v valgrind >/dev/null || {
    echo "valgrind is not installed (Debian package valgrind)" >&2
    exit 1
}

# The binary's function symbols, for filtering and --check.
build_release
nm --defined-only "$rotator" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$work/symbols"

if [[ "${1:-}" == "--check" ]]; then
    listed="$(grep -vc '^#' "$list" || true)"
    found="$(grep -v '^#' "$list" | sort -u | comm -12 - "$work/symbols" | wc -l)"
    echo "$found of $listed listed functions are in $rotator"
    exit 0
fi

# profile LABEL COMMAND...: runs COMMAND under callgrind, names mangled.
profile() {
    local label="$1"
    shift
    valgrind --tool=callgrind --demangle=no --dump-instr=no \
        --callgrind-out-file="$work/callgrind.$label.out" "$@" \
        </dev/null >"$work/$label.out" 2>"$work/$label.err" || {
        echo "$label failed under callgrind:" >&2
        tail -5 "$work/$label.out" "$work/$label.err" >&2
        exit 1
    }
}

n=8
write_seed "$work/seed.toml" 1 "$n"
start_sim "$work/seed.toml"
mkdir -p "$work/store"
port="$(free_port)"
write_config "$work/config.toml" 1 "$n" "$sim_url" "$work/store" "0 0 3 * * Sun" \
    "127.0.0.1:$port" 4 4

profile rotate-bootstrap "$rotator" --config "$work/config.toml" rotate --all
profile rotate-steady "$rotator" --config "$work/config.toml" rotate --all
profile verify "$rotator" --config "$work/config.toml" verify --all

# The daemon: start-up until ready, a scrape, and a clean shutdown.
valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --callgrind-out-file="$work/callgrind.daemon.out" \
    "$rotator" --config "$work/config.toml" run </dev/null >"$work/daemon.out" 2>&1 &
daemon=$!
started_pids+=("$daemon")
ready=""
for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$ready" ]] || {
    echo "the daemon did not become ready under callgrind:" >&2
    tail -5 "$work/daemon.out" >&2
    exit 1
}
curl -fsS -o /dev/null "http://127.0.0.1:$port/metrics"
curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz"
profile status "$rotator" --config "$work/config.toml" status
profile status-json "$rotator" --config "$work/config.toml" status --json
kill -TERM "$daemon"
wait "$daemon" || {
    echo "the daemon did not stop cleanly:" >&2
    tail -5 "$work/daemon.out" >&2
    exit 1
}

profile demo-m2m "$rotator" demo --m2m --rotations 2 --interval 0 --data-dir "$work/demo"

# Each profile's functions that the ones before it did not run, the daemon's first: the idle
# daemon's code comes first and together.
python3 - "$work" "$work/symbols" "$list" daemon status status-json rotate-bootstrap \
    rotate-steady verify demo-m2m <<'PY'
import re, sys
work, symbols_path, list_path, *labels = sys.argv[1:]
symbols = set(open(symbols_path).read().split())
order, seen = [], set()
for label in labels:
    # Sorted within each profile, so that making the list again gives the same file (threads
    # make the order in which functions first ran differ from run to run).
    new = set()
    for line in open(f"{work}/callgrind.{label}.out"):
        match = re.match(r"^c?fn=\(\d+\) (.+)$", line)
        if match:
            name = match.group(1).strip()
            if name in symbols and name not in seen:
                new.add(name)
    seen |= new
    order.extend(sorted(new))
header = """\
# Functions of netsuite-token-rotator that the daemon's start-up, `status`, `rotate --all`,
# `verify` and the M2M demo run (the daemon's first, each profile's sorted by name): build.rs
# has rust-lld put them together at the start of .text in release builds, so that the code a rotation runs is
# resident without most of the rest (see build.rs). Made by scripts/gen-hot-functions.sh;
# regenerate after a dependency or toolchain update. A name the binary lacks is skipped.
"""
with open(list_path, "w") as out:
    out.write(header)
    out.write("\n".join(order) + "\n")
print(f"{len(order)} functions written to {list_path}")
PY
