#!/usr/bin/env bash
# Makes the lab's base image without an image registry: a Debian bookworm
# root file system with nginx-light, by debootstrap from the Debian mirror
# apt already uses, imported with `docker import`. Needs root, debootstrap
# and a running Docker engine; takes about a minute (the file system is
# cached as a tarball, so a second run only imports it).
#
#   lab/build-base.sh [IMAGE]        default IMAGE: badgateway-lab/base:bookworm
#
# LAB_MIRROR overrides the mirror; LAB_BASE_FORCE=1 rebuilds an image that
# exists; BADGATEWAY_CACHE_DIR (else $XDG_CACHE_HOME/badgateway-lab, else
# ~/.cache/badgateway-lab) holds the tarball.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;; -*) echo "build-base: unknown option $1" >&2; exit 2;; esac
image=${1:-badgateway-lab/base:bookworm}
suite=bookworm
packages=nginx-light
docker=${DOCKER:-docker}

if [ "${LAB_BASE_FORCE:-}" != 1 ] && "$docker" image inspect "$image" >/dev/null 2>&1; then
    echo "build-base: $image exists (LAB_BASE_FORCE=1 rebuilds it)"
    exit 0
fi

# The first mirror apt uses for $suite itself (not -updates or -security):
# deb822 stanzas (*.sources) or one-line entries (*.list).
mirror_from_apt() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '
            function flush() { if (uris != "" && has) { split(uris, u, " "); print u[1]; exit } uris = ""; has = 0 }
            /^[[:space:]]*$/ { flush(); next }
            /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i+1) == suite) { print $i; exit } }' "$f"
    done
}
mirror=${LAB_MIRROR:-$(mirror_from_apt | head -n1)}
if [ -z "$mirror" ]; then
    echo "build-base: no Debian mirror for $suite in /etc/apt/sources.list*; set LAB_MIRROR" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "build-base: debootstrap needs root" >&2
    exit 2
fi
command -v debootstrap >/dev/null || { echo "build-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }

cache=${BADGATEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/badgateway-lab}/docker-base
key=$(printf '%s\n' "$suite" "$packages" "$mirror" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
tarball=$cache/$suite-$key.tar
start=$(date +%s)
if [ ! -s "$tarball" ]; then
    root=$(mktemp -d)
    trap 'rm -rf -- "$root"' EXIT
    echo "build-base: debootstrap --variant=minbase --include=$packages $suite from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$root/fs" "$mirror" >"$root/debootstrap.log" 2>&1 || {
        tail -n 20 "$root/debootstrap.log" >&2
        exit 1
    }
    # What an image does not need: downloaded packages, package lists,
    # documentation and translations.
    rm -rf "$root"/fs/var/cache/apt/archives/*.deb "$root"/fs/var/lib/apt/lists/* \
        "$root"/fs/usr/share/doc/* "$root"/fs/usr/share/man/* "$root"/fs/usr/share/info/* "$root"/fs/usr/share/locale/*
    mkdir -p "$cache"
    tar -C "$root/fs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf -- "$root"
    trap - EXIT
else
    echo "build-base: using the cached file system $tarball"
fi
"$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase --include=$packages $suite $mirror" "$tarball" "$image" >/dev/null
"$docker" run --rm "$image" /usr/sbin/nginx -v
echo "build-base: $image ready in $(( $(date +%s) - start )) s ($("$docker" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
