#!/usr/bin/env bash
# Builds the lab's programs on the host into lab/bin, for images built with
# BINARIES=prebuilt (lab/offline.env): no compiler image, no registry. The
# Rust binaries link the host's glibc, so the runtime image must be as new
# (the images run `proxy --version` at build time, which says so if not);
# go-upstream is static.
#
#   lab/prebuilt.sh                 cargo build --release, go build
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p lab/bin
cargo build --release --locked -p proxy -p upstream-sim
cp target/release/proxy target/release/upstream-sim lab/bin/
(cd fixtures/go-upstream && CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -trimpath -o ../../lab/bin/go-upstream .)
ls -l lab/bin/proxy lab/bin/upstream-sim lab/bin/go-upstream
