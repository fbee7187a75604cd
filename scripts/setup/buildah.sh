#!/usr/bin/env bash
# Installs buildah and crun (Debian packages), which scripts/build-image.sh and its test
# (tests/image.rs) use to build and run the OCI image from scratch, and prints buildah's path.
# Idempotent: nothing is installed when both are already on PATH. Installing needs root (or
# password-less sudo) and apt-get; CI runs as root with no stdin.
set -euo pipefail

if ! command -v buildah >/dev/null 2>&1 || ! command -v crun >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "buildah.sh: buildah/crun are missing; install Debian's buildah and crun packages as root" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "buildah.sh: no apt-get here; install buildah and crun by hand" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq </dev/null >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends buildah crun </dev/null >&2
fi

buildah --version >&2
command -v buildah
