#!/usr/bin/env bash
# Installs promtool and prometheus (Debian's `prometheus` package), which the tests of the
# shipped alert rules and dashboard run (tests/prometheus_rules.rs, tests/grafana_dashboard.rs),
# and prints the path of each.
# Idempotent: nothing is installed when both are already on PATH. Installing needs root (or
# password-less sudo) and apt-get; CI runs as root with no stdin. The package's service is not
# wanted here: the tests start their own servers on free ports, so policy-rc.d keeps apt from
# starting one where an init system would.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "prometheus.sh: promtool/prometheus are missing; install Debian's prometheus package as root" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "prometheus.sh: no apt-get here; install promtool and prometheus (Prometheus 2.x) by hand" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    added_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=true
    fi
    trap 'if $added_policy; then "${sudo[@]}" rm -f "$policy"; fi' EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq </dev/null >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus </dev/null >&2
fi

for tool in promtool prometheus; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "prometheus.sh: apt-get finished but $tool is not on PATH" >&2
        exit 1
    fi
done
promtool --version 2>&1 | head -n 1 >&2
command -v promtool
command -v prometheus
