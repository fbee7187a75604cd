#!/usr/bin/env bash
# Installs RustyVault (crate rusty_vault, binary `rvault`), the Vault-API-compatible server the
# Vault KV v1 / AppRole tests run against. Idempotent: reuses an `rvault` already on PATH or in
# ~/.cargo/bin. Prints the binary's path on its last line.
set -euo pipefail

RUSTY_VAULT_VERSION="${RUSTY_VAULT_VERSION:-0.2.1}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

existing="$(command -v rvault || true)"
if [[ -z "$existing" && -x "$cargo_bin/rvault" ]]; then
    existing="$cargo_bin/rvault"
fi
if [[ -n "$existing" ]]; then
    echo "rvault already installed"
    echo "$existing"
    exit 0
fi

# rusty_vault's default crypto adaptor links the system OpenSSL through openssl-sys, which needs
# its headers and pkg-config to find them.
missing=()
for pkg in libssl-dev pkg-config; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} > 0)); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Its own target dir, so a test build's shared target dir is not locked for the long compile.
echo "building rusty_vault $RUSTY_VAULT_VERSION (takes a while)"
CARGO_TARGET_DIR="${RVAULT_BUILD_DIR:-${TMPDIR:-/tmp}/rvault-build}" \
    cargo install --locked --version "$RUSTY_VAULT_VERSION" rusty_vault
echo "$cargo_bin/rvault"
