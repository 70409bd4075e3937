# The Go reference server (fixtures/go-upstream: net/http, standard library
# only), the real counterpart of upstream-sim.
#
# Build arguments (docker-compose.yml passes them from LAB_* variables):
#   GO_IMAGE    the compile stage's image (default: the official golang
#               image, Go 1.19 as in Debian 12 and reference/observed.md)
#   BASE_IMAGE  the runtime image (the binary is static: CGO_ENABLED=0)
#   BINARIES    "build": go build here; "prebuilt": take lab/bin/go-upstream,
#               built on the host (lab/prebuilt.sh)
ARG GO_IMAGE=golang:1.19-bullseye
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ARG BINARIES=build
WORKDIR /src
COPY fixtures/go-upstream/ ./
COPY lab/bin/ /prebuilt/
RUN set -eu; mkdir -p /out; \
    case "$BINARIES" in \
    build) CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -trimpath -o /out/go-upstream .;; \
    prebuilt) cp /prebuilt/go-upstream /out/;; \
    *) echo "BINARIES=$BINARIES: build or prebuilt" >&2; exit 1;; \
    esac

FROM ${BASE_IMAGE}
COPY --from=build /out/go-upstream /usr/local/bin/go-upstream
EXPOSE 18080
ENTRYPOINT ["/usr/local/bin/go-upstream"]
