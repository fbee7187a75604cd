#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and reports, per target, the runs
# executed, the corpus size at the end and the crashes found. Exits non-zero when any target
# crashed (a panic is a crash); the crashing input's path is in the output.
#
#   scripts/fuzz.sh         # 20 seconds per target (what CI runs)
#   scripts/fuzz.sh 600     # a longer run: 10 minutes per target
#   FUZZ_ARGS="-seed=1" scripts/fuzz.sh 60    # more libFuzzer flags (they win over the ones here)
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) plus whatever earlier runs
# left in its working corpus (fuzz/corpus/<target>/, git-ignored). Crashing inputs are written
# to fuzz/artifacts/<target>/; the libFuzzer log of each run to fuzz/target/logs/<target>.log.
# Needs no standard input; CI runs it with CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

targets=(config netsuite_responses sim_headers store_documents)

echo "cargo-fuzz: $(bash scripts/setup/cargo-fuzz.sh </dev/null | tail -n 1)"

# cargo fuzz passes nightly-only flags: -Zsanitizer=address and the sanitizer-coverage
# -Cllvm-args to rustc, -Z options to cargo. This machine (and CI's) has the stable toolchain
# only, and no nightly can be fetched; RUSTC_BOOTSTRAP=1 makes stable rustc and cargo accept
# -Z flags. It is set for the cargo fuzz commands below only, never for the test suite.
fuzz_cargo() {
    RUSTC_BOOTSTRAP=1 cargo fuzz "$@" </dev/null
}

# Its own target dir: the instrumented release build shares nothing with the test build, and a
# CARGO_TARGET_DIR exported by the caller must not mix the two.
target_dir="$repo/fuzz/target"
unset CARGO_TARGET_DIR

# cargo fuzz has no --locked: check the committed fuzz/Cargo.lock is complete first, so that a
# build never changes it quietly.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
    echo "fuzz/Cargo.lock is out of date (did the root crate's dependencies change?). Update it" \
        "with: cargo metadata --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null;" \
        "then commit fuzz/Cargo.lock" >&2
    exit 1
fi

started=$SECONDS
fuzz_cargo build --target-dir "$target_dir"
echo "built ${#targets[@]} fuzz targets in $((SECONDS - started)) s;" \
    "fuzz/target holds $(du -sh "$target_dir" | cut -f1)"

mkdir -p "$target_dir/logs"
failed=()
for target in "${targets[@]}"; do
    corpus="$repo/fuzz/corpus/$target"
    log="$target_dir/logs/$target.log"
    mkdir -p "$corpus"
    cp "$repo/fuzz/seeds/$target/"* "$corpus/"
    # The example config is 5 KB; everything else is far below 4 KB.
    max_len=4096
    if [ "$target" = config ]; then max_len=8192; fi
    status=0
    fuzz_cargo run --target-dir "$target_dir" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
        -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$? # FUZZ_ARGS: split on spaces

    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    files="$(find "$corpus" -type f | wc -l)"
    bytes="$(find "$corpus" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')"
    if [ "$status" -eq 0 ]; then
        echo "fuzz $target: ${runs:-?} runs in $seconds s, corpus $files files ($bytes bytes), crashes 0"
    else
        failed+=("$target")
        echo "fuzz $target: ${runs:-?} runs in $seconds s, corpus $files files ($bytes bytes)," \
            "CRASHED (exit $status); from $log:"
        # The panic and its message, libFuzzer's verdict, and where the input was written.
        grep -E -A1 "panicked at" "$log" | head -n 10 || true
        grep -E "ERROR: libFuzzer|SUMMARY: |Test unit written to" "$log" | head -n 10 || true
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz: crashes in ${failed[*]}; the inputs are in fuzz/artifacts/<target>/" \
        "(reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <input>)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, $seconds s each, no crash"
