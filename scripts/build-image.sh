#!/usr/bin/env bash
# Builds the netsuite-token-rotator OCI image with buildah, FROM scratch, pulling nothing: the
# binary, the shared libraries `ldd` says it links, the system CA certificates (rustls checks
# NetSuite, Vault, AWS and OTLP servers against them), /etc/passwd and /etc/group with the
# non-root user 65532 (the chart's securityContext), and /var/lib/netsuite-token-rotator owned by
# it (the file store's default home). Same layout as the Dockerfile, which needs a registry for
# its base images.
#
#   scripts/build-image.sh                         # cargo build --release, tag localhost/netsuite-token-rotator:<version>
#   scripts/build-image.sh --binary PATH --tag T   # an already built binary (the test uses the debug one)
#
# Prints the image id on stdout. Needs buildah (scripts/setup/buildah.sh) and root, as buildah's
# default storage does. Run it with `buildah run --isolation chroot` (crun installed), or push
# it to a registry and run it under Kubernetes.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
tag="localhost/netsuite-token-rotator:${version}"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        *) echo "build-image.sh: unknown argument $1 (expected --binary PATH, --tag TAG)" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    cargo build --release --locked --quiet --bin netsuite-token-rotator </dev/null >&2
    binary=target/release/netsuite-token-rotator
fi
[ -x "$binary" ] || { echo "build-image.sh: no executable at $binary" >&2; exit 1; }
command -v buildah >/dev/null || { echo "build-image.sh: buildah is missing: run scripts/setup/buildah.sh" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-image.sh: no CA bundle at $ca (Debian's ca-certificates)" >&2; exit 1; }

work="$(mktemp -d)"
ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

buildah copy --quiet "$ctr" "$binary" /usr/bin/netsuite-token-rotator >/dev/null
# The dynamic loader and every library, at the paths the binary was linked against.
for lib in $(ldd "$binary" | grep -o '/[^ ]*' | sort -u); do
    buildah copy --quiet "$ctr" "$(readlink -f "$lib")" "$lib" >/dev/null
done
buildah copy --quiet "$ctr" "$ca" "$ca" >/dev/null
printf 'root:x:0:0:root:/:/usr/sbin/nologin\nrotator:x:65532:65532:netsuite-token-rotator:/var/lib/netsuite-token-rotator:/usr/sbin/nologin\n' >"$work/passwd"
printf 'root:x:0:\nrotator:x:65532:\n' >"$work/group"
buildah copy --quiet "$ctr" "$work/passwd" /etc/passwd >/dev/null
buildah copy --quiet "$ctr" "$work/group" /etc/group >/dev/null
mkdir -m 0700 "$work/home" "$work/tmp"
buildah copy --quiet --chown 65532:65532 --chmod 0700 "$ctr" "$work/home" /var/lib/netsuite-token-rotator >/dev/null
buildah copy --quiet --chmod 1777 "$ctr" "$work/tmp" /tmp >/dev/null

buildah config \
    --user 65532:65532 \
    --workingdir /var/lib/netsuite-token-rotator \
    --env SSL_CERT_FILE="$ca" \
    --port 9464 \
    --entrypoint '["/usr/bin/netsuite-token-rotator"]' \
    --cmd '["--config", "/etc/netsuite-token-rotator/config.toml", "run"]' \
    --label org.opencontainers.image.title=netsuite-token-rotator \
    --label org.opencontainers.image.version="$version" \
    "$ctr"
buildah commit --quiet --rm "$ctr" "$tag"
trap 'rm -rf "$work"' EXIT
