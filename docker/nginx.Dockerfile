# Real nginx (Debian's nginx-light, 1.22.1 on bookworm) reading
# fixtures/nginx.conf with only its addresses changed (docker/lab-conf.sh).
#
# BASE_IMAGE: debian:bookworm-slim (nginx-light is installed from Debian), or
# a local image that already has /usr/sbin/nginx (lab/build-base.sh: no
# registry needed, and no package download at build time).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -eu; \
    if [ ! -x /usr/sbin/nginx ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    /usr/sbin/nginx -v
COPY docker/lab-conf.sh /usr/local/bin/lab-conf
WORKDIR /lab/run
EXPOSE 18081
ENTRYPOINT ["/usr/local/bin/lab-conf"]
CMD ["/usr/sbin/nginx", "-p", "/lab/run/", "-c", "/lab/run/nginx.conf", "-g", "daemon off;"]
