#!/bin/sh
# Entry point of the nginx and proxy images: writes /lab/run/nginx.conf from
# fixtures/nginx.conf (mounted at /lab/nginx.conf) with only its addresses
# changed for the lab's network, prints the change, then runs the program.
#
#   listen 127.0.0.1:18081;   → listen $LAB_LISTEN;    (default 18081: every interface of the container)
#   server 127.0.0.1:18080;   → server $LAB_UPSTREAM;  (default upstream:18080: the upstream-sim service)
#
# Everything else (keepalive, timeouts, proxy_next_upstream, log formats,
# prefix-relative logs under /lab/run) is the fixture's, byte for byte. Each
# address must appear exactly once, so a fixture that moved on fails loudly.
set -eu
src=${LAB_CONF:-/lab/nginx.conf}
run=/lab/run
listen=${LAB_LISTEN:-18081}
upstream=${LAB_UPSTREAM:-upstream:18080}
listen_re='^\([[:space:]]*listen[[:space:]]\{1,\}\)127\.0\.0\.1:18081;'
server_re='^\([[:space:]]*server[[:space:]]\{1,\}\)127\.0\.0\.1:18080;'
for re in "$listen_re" "$server_re"; do
    n=$(grep -c -e "$re" "$src" || true)
    if [ "$n" != 1 ]; then
        echo "lab-conf: $src: expected one line matching $re, found $n" >&2
        exit 1
    fi
done
mkdir -p "$run"
sed -e "s/$listen_re/\\1$listen;/" -e "s/$server_re/\\1$upstream;/" "$src" > "$run/nginx.conf"
echo "lab-conf: $run/nginx.conf is $src with these addresses changed:" >&2
diff "$src" "$run/nginx.conf" >&2 || true
exec "$@"
