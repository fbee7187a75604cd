#!/usr/bin/env bash
# Installs moto_server (the AWS Secrets Manager stand-in the AWS store tests run against) into
# the repository's .venv, and prints the path of the moto_server binary.
# Idempotent: an existing .venv is reused, and pip runs only when moto_server is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.venv"
moto_server="$venv/bin/moto_server"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi

if [ ! -x "$moto_server" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'moto[server]>=5.2,<6' </dev/null >&2
fi

if [ ! -x "$moto_server" ]; then
    echo "moto.sh: pip finished but $moto_server is missing" >&2
    exit 1
fi

echo "$moto_server"
