# syntax=docker/dockerfile:1
# One small runtime image with all four binaries: adbudget, adbudget-api, adbudget-worker,
# adbudget-beat. Dependencies are compiled in their own cached layer (cargo-chef), so a code change
# rebuilds only the workspace crates.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS chef
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/* \
 && cargo install cargo-chef --locked --version ^0.1
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked \
      --bin adbudget --bin adbudget-api --bin adbudget-worker --bin adbudget-beat

FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 adbudget \
 && useradd --system --uid 10001 --gid adbudget --home-dir /var/lib/adbudget --create-home adbudget
COPY --from=builder /app/target/release/adbudget \
                    /app/target/release/adbudget-api \
                    /app/target/release/adbudget-worker \
                    /app/target/release/adbudget-beat /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/adbudget
# MALLOC_ARENA_MAX=2: glibc's default of 8 malloc arenas a core keeps freed memory of the
# worker's sweeps in arenas it no longer uses (peak 50.1 MiB over 1M campaigns, 47.4 MiB with two;
# the API was no slower with two: BENCHMARKS.md, "The worker's resident set").
ENV ADBUDGET_BIND=0.0.0.0:8000 \
    ADBUDGET_HEALTH_BIND=0.0.0.0:8001 \
    ADBUDGET_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2
EXPOSE 8000 8001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["adbudget-api"]
