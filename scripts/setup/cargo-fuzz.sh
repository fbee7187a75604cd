#!/usr/bin/env bash
# Installs cargo-fuzz (the `cargo fuzz` subcommand that builds and runs the libFuzzer targets in
# fuzz/). Idempotent: does nothing when `cargo fuzz --version` already works. Prints the
# binary's path and version on its last line.
#
# cargo-fuzz itself builds on the stable toolchain; it is the fuzz targets that need nightly
# flags, which scripts/fuzz.sh unlocks with RUSTC_BOOTSTRAP=1 (see there).
set -euo pipefail

CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "building cargo-fuzz $CARGO_FUZZ_VERSION (about a minute)"
    # Without CARGO_TARGET_DIR cargo install builds in a temporary directory and removes it
    # afterwards, instead of leaving the build in whatever target dir the caller exported.
    env -u CARGO_TARGET_DIR cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz \
        </dev/null
fi

version="$(cargo fuzz --version)"
path="$(command -v cargo-fuzz || echo "$cargo_bin/cargo-fuzz")"
echo "$path ($version)"
