# syntax=docker/dockerfile:1
#
# One image for the whole pipeline: the four services and the `scimtrail` CLI.
# The container's command picks the binary (compose / Helm set it):
#
#   docker build -t scimtrail .
#   docker run --read-only --tmpfs /tmp -e SCIMTRAIL__KAFKA__BROKERS=kafka:9092 scimtrail scimtrail-enricher
#
# Build arguments:
#   RUST_VERSION    tag prefix of the rust image the build runs on (default 1 = latest stable;
#                   the workspace needs >= 1.88)
#   PROFILE         cargo profile: release (default) or dev
#   CARGO_FEATURES  passed to `cargo build --features` (workspace builds need the
#                   `package/feature` form); empty by default
#   VERSION, REVISION, CREATED  values of the OCI labels (set by CI)
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

ARG RUST_VERSION=1

# ---------------------------------------------------------------- builder
FROM rust:${RUST_VERSION}-bookworm AS builder

# librdkafka is compiled from source by rdkafka-sys (configure + make, gcc from
# the base image) and links OpenSSL and zlib dynamically.
# Debian's security updates replace package versions, so pins would break the
# build rather than make it reproducible: the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

ARG PROFILE=release
ARG CARGO_FEATURES=""
# The registry and target dir live in cache mounts, so a rebuild after a source
# change recompiles only the workspace crates. Cache mounts are not part of the
# image: the binaries are copied out to /out within the same step.
RUN --mount=type=cache,id=scimtrail-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=scimtrail-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=scimtrail-target,target=/src/target,sharing=locked \
    set -eu; \
    set -- --locked --workspace --bins --profile "$PROFILE"; \
    if [ -n "$CARGO_FEATURES" ]; then set -- "$@" --features "$CARGO_FEATURES"; fi; \
    cargo build "$@"; \
    case "$PROFILE" in dev|test) dir=debug ;; bench) dir=release ;; *) dir=$PROFILE ;; esac; \
    mkdir -p /out/bin; \
    for bin in scimtrail scimtrail-ingest scimtrail-enricher scimtrail-detector scimtrail-sink; do \
      install -m 0755 "target/$dir/$bin" /out/bin/; \
    done

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 scimtrail \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin scimtrail

COPY --from=builder /out/bin/ /usr/local/bin/
COPY schemas/ /usr/share/scimtrail/schemas/

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="scimtrail" \
      org.opencontainers.image.description="Streaming, tamper-evident audit trail for SCIM 2.0 provisioning, on Apache Kafka: scimtrail-ingest, -enricher, -detector, -sink and the scimtrail CLI" \
      org.opencontainers.image.source="https://github.com/scimtrail/scimtrail" \
      org.opencontainers.image.documentation="https://github.com/scimtrail/scimtrail/blob/main/docs/operations.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# The services write nothing to disk (logs go to stderr): the image runs with a
# read-only root filesystem; /tmp is the only place worth a tmpfs.
# /metrics, /healthz and /readyz on every interface, on one port for all services.
ENV SCIMTRAIL__ADMIN__LISTEN=0.0.0.0:9100 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 9100
# Every service drains on SIGTERM: the batch in hand commits, the group is left cleanly.
STOPSIGNAL SIGTERM
CMD ["scimtrail-ingest"]
