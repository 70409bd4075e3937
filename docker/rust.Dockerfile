# The Rust programs of the lab: `proxy` (the nginx emulator) and
# `upstream-sim` (the Go emulator). One image, two services.
#
# Build arguments (docker-compose.yml passes them from LAB_* variables):
#   RUST_IMAGE  the compile stage's image (default: the official rust image)
#   BASE_IMAGE  the runtime image (default: debian:bookworm-slim; same glibc
#               as rust:*-bookworm)
#   BINARIES    "build": compile here with cargo; "prebuilt": take
#               lab/bin/proxy and lab/bin/upstream-sim, built on the host
#               (lab/prebuilt.sh), so RUST_IMAGE can be any image with a
#               shell, e.g. the local base of lab/build-base.sh
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# The workspace's manifests, with every .rs file emptied (main.rs files get
# an empty main): unchanged while only sources change, so the dependency
# build below stays a cached layer.
FROM ${RUST_IMAGE} AS skeleton
COPY . /ws
RUN set -eu; cd /ws; rm -rf lab/bin; \
    find . -type f ! -name Cargo.toml ! -name Cargo.lock ! -name '*.rs' -delete; \
    find . -name '*.rs' -exec sh -c 'for f; do case "$f" in */main.rs|*/src/bin/*) echo "fn main() { }" > "$f";; *) : > "$f";; esac; done' sh {} +

FROM ${RUST_IMAGE} AS build
ARG BINARIES=build
WORKDIR /src
COPY --from=skeleton /ws/ ./
RUN if [ "$BINARIES" = build ]; then cargo build --release --locked -p proxy -p upstream-sim; fi
COPY . .
RUN set -eu; mkdir -p /out; \
    case "$BINARIES" in \
    build) \
        find crates -name '*.rs' -exec touch {} +; \
        cargo build --release --locked -p proxy -p upstream-sim; \
        cp target/release/proxy target/release/upstream-sim /out/;; \
    prebuilt) \
        cp lab/bin/proxy lab/bin/upstream-sim /out/;; \
    *) echo "BINARIES=$BINARIES: build or prebuilt" >&2; exit 1;; \
    esac

FROM ${BASE_IMAGE}
COPY --from=build /out/ /usr/local/bin/
COPY docker/lab-conf.sh /usr/local/bin/lab-conf
RUN /usr/local/bin/proxy --version && /usr/local/bin/upstream-sim --version
WORKDIR /lab/run
