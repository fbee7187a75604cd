#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need (moto_server,
# OpenBao's bao, Debian's prometheus, buildah and crun packages; idempotently,
# reusing what is already there), then runs `cargo test`, every cargo-fuzz target for a short
# while, and the benchmark scripts in short mode.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
#   FUZZ_SECONDS=120 scripts/test.sh   # fuzz each target longer (default 20 s)
set -euo pipefail
cd "$(dirname "$0")/.."

# A CI run builds once: incremental caches would only add gigabytes to the target directory.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
# Say how much disk there is, so a build killed by a full disk (the linker dies with SIGBUS)
# is recognisable from the log. A fresh clone needs about 4 GB for the tests and 2 GB more for
# the fuzz targets' instrumented build (fuzz/target).
free_kib="$(df -Pk . | awk 'NR == 2 { print $4 }')"
echo "== disk: $((free_kib / 1024)) MiB free under $(pwd) [${SECONDS}s in]"
if [ "$free_kib" -lt $((6 * 1024 * 1024)) ]; then
  echo "warning: less than 6 GiB free; the build may fail when the disk fills" >&2
fi

echo "== setting up test servers [${SECONDS}s in]"
MOTO_SERVER="$(bash scripts/setup/moto.sh | tail -n 1)"
BAO="$(bash scripts/setup/openbao.sh | tail -n 1)"
# promtool and prometheus for the alert-rule and dashboard tests (Debian's prometheus package).
prometheus_tools="$(bash scripts/setup/prometheus.sh)"
PROMTOOL="$(sed -n 1p <<<"$prometheus_tools")"
PROMETHEUS="$(sed -n 2p <<<"$prometheus_tools")"
# buildah and crun for the image test (tests/image.rs; Debian packages).
BUILDAH="$(bash scripts/setup/buildah.sh | tail -n 1)"
export MOTO_SERVER BAO PROMTOOL PROMETHEUS
echo "moto_server: $MOTO_SERVER"
echo "bao:         $BAO"
echo "promtool:    $PROMTOOL"
echo "prometheus:  $PROMETHEUS"
echo "buildah:     $BUILDAH"

features=()
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "Docker engine found: the testcontainers tests against real Vault and moto images run too"
  features=(--features docker-tests)
else
  echo "SKIPPED (not run, not counted as passed): tests/docker_stores.rs, the testcontainers tests"
  echo "  against the real hashicorp/vault and motoserver/moto images, because no Docker engine"
  echo "  answers here ('docker info' failed). The same scenarios run against OpenBao and"
  echo "  moto_server below. Type-checking them so they cannot rot:"
  cargo check --locked --tests --features docker-tests --quiet
fi

echo "== packaging: Helm chart and systemd units [${SECONDS}s in]"
bash scripts/check-packaging.sh

echo "== cargo test [${SECONDS}s in]"
shift_args=()
if [ "${1:-}" = "--" ]; then shift; shift_args=("$@"); fi
cargo test --locked "${features[@]}" "${shift_args[@]}"

fuzz_seconds="${FUZZ_SECONDS:-20}"
echo "== cargo fuzz: every target in fuzz/ for $fuzz_seconds s (scripts/fuzz.sh; builds them first) [${SECONDS}s in]"
bash scripts/fuzz.sh "$fuzz_seconds"

echo "== benchmarks, short mode (figures are not judged here; this keeps the scripts working) [${SECONDS}s in]"
bash scripts/bench-smoke.sh
echo "== done [${SECONDS}s in]"
