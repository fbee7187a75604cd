# netsuite-token-rotator container image: a Rust build stage and a slim, non-root runtime.
#
#   docker build -t netsuite-token-rotator:0.1.0 .       (or: buildah bud / podman build)
#
# The runtime user is uid/gid 65532, the chart's default securityContext. The image holds the
# binary and CA certificates only; the config comes from a mounted ConfigMap
# (/etc/netsuite-token-rotator/config.toml) and secrets from Kubernetes Secrets.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
# build.rs too: it sets the release binary's link flags. The benchmarks are declared in
# Cargo.toml, so their files must exist for the manifest to be complete; empty ones do.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src/bin benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/bin/netsuite-sim.rs \
    && echo 'fn main() {}' > benches/signing.rs \
    && echo 'fn main() {}' > benches/responses.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin netsuite-token-rotator \
    && strip target/release/netsuite-token-rotator

FROM debian:bookworm-slim AS runtime
# rustls checks server certificates against the system roots (NetSuite, Vault, AWS, OTLP).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 rotator \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/netsuite-token-rotator \
       --no-create-home --shell /usr/sbin/nologin rotator \
    && install -d -o 65532 -g 65532 -m 0700 /var/lib/netsuite-token-rotator
COPY --from=build /src/target/release/netsuite-token-rotator /usr/bin/netsuite-token-rotator
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/bin/netsuite-token-rotator"]
CMD ["--config", "/etc/netsuite-token-rotator/config.toml", "run"]
