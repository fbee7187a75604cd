#!/usr/bin/env bash
# Checks the packaging: the Helm chart (strict lint, rendering with the default values and
# ci/full-values.yaml, Kubernetes 1.30 validation, pod hardening, values schema, config.toml)
# and the systemd units (systemd-analyze verify, security exposure <= 1.5, sysusers).
#
#   bash scripts/check-packaging.sh      # exits non-zero on any problem
#
# Installs what it needs, idempotently: helm-python-sdk, kubernetes-validate, jsonschema, pytest
# and PyYAML into the repository's .venv (the one scripts/setup/moto.sh makes), Debian's systemd package
# when systemd-analyze is missing. Builds the netsuite-token-rotator binary (the units are
# verified against it, and the rendered config.toml is loaded by it).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
venv="$repo_root/.venv"

echo "== packaging: tools"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import helm_python, jsonschema, kubernetes_validate, pytest, yaml' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'helm-python-sdk>=0.2.2,<0.3' 'kubernetes-validate>=1.30' 'jsonschema>=4' 'pytest>=8' 'PyYAML>=6' </dev/null
fi
"$venv/bin/python" -c 'import helm_python as h; print("helm SDK", h.helm_sdk_version(), "(helm-python-sdk", h.__version__ + ")")'

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "check-packaging: systemd-analyze is missing; install the systemd package" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends systemd </dev/null >/dev/null
fi
systemd-analyze --version | head -n 1

echo "== packaging: building netsuite-token-rotator"
cargo build --locked --quiet --bin netsuite-token-rotator
NTR_BIN="${CARGO_TARGET_DIR:-$repo_root/target}/debug/netsuite-token-rotator"
export NTR_BIN
echo "binary: $NTR_BIN"

echo "== packaging: tests/packaging (pytest)"
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider -s -v -rs tests/packaging || status=$?

echo "== packaging: summary"
if [ "$status" -eq 0 ]; then
    echo "packaging checks passed (chart lint/render/validate/hardening/schema/config; systemd verify/security/sysusers)"
else
    echo "packaging checks FAILED (pytest exit $status): see the failures above" >&2
fi
exit "$status"
