#!/usr/bin/env bash
# Installs what the benchmark scripts measure with: valgrind (scripts/bench-callgrind.sh) and
# GNU time, /usr/bin/time (scripts/bench-python-peer.sh; bench-fleet.sh uses it when present),
# both Debian packages. Idempotent: nothing is installed when both are there. Installing needs
# root (or password-less sudo) and apt-get; CI runs as root with no stdin.
set -euo pipefail

packages=()
command -v valgrind >/dev/null 2>&1 || packages+=(valgrind)
{ [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; } || packages+=(time)
((${#packages[@]} == 0)) && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "bench-tools.sh: ${packages[*]} missing; install the Debian packages as root" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench-tools.sh: no apt-get here; install ${packages[*]} by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq </dev/null >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" </dev/null >&2
