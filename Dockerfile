# keytunnel's soft authenticator as a test container: a real CTAP 2.1 / U2F authenticator behind a CTAPHID device
# on the loopback face (TCP, 64 raw bytes per HID report), for relying-party tests and CI (keytunnel/testing's
# WebAuthnTestClient, keytunnel/testcontainers' KeytunnelContainer, python-fido2, ...).
#
#   npm ci && docker build -t keytunnel .
#   docker run --rm -p 127.0.0.1:8090:8090 keytunnel
#
# The build stage reuses the context's node_modules when `npm ci` has run (no registry needed), else installs;
# the runtime stage is the base image + one self-contained bundle (scripts/build-image-bundle.mjs) + a non-root
# user: no npm, no node_modules, no sources. BASE defaults to the official Node 20 image; any image with node 20
# at /usr/local/bin/node or on PATH works (the tests use a debootstrap minbase + node, see test/container/).
#
# The device has NO authentication and user presence is approved automatically: anyone who reaches the port uses
# the authenticator. That is why listening beyond the container's loopback needs
# --allow-unauthenticated-remote-access; publish the port on 127.0.0.1 only, and keep nothing of value in it.
ARG BASE=node:20-bookworm-slim

FROM ${BASE} AS build
# Lets a test harness find this stage's leftover image (docker image prune --filter label=keytunnel.stage=build).
LABEL keytunnel.stage=build
WORKDIR /src
COPY . .
RUN if [ ! -x node_modules/.bin/esbuild ]; then npm ci --no-audit --no-fund --ignore-scripts; fi \
 && node scripts/build-image-bundle.mjs /out

FROM ${BASE}
# A fixed non-root user (written directly: minimal bases have no useradd).
RUN echo 'keytunnel:x:10001:10001:keytunnel:/home/keytunnel:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'keytunnel:x:10001:' >> /etc/group \
 && mkdir -p /home/keytunnel && chown 10001:10001 /home/keytunnel && chmod 0700 /home/keytunnel
COPY --from=build /out /app
USER 10001:10001
WORKDIR /home/keytunnel
# The store of a throw-away test authenticator: the passphrase is public on purpose (>= 8 characters).
ENV KEYTUNNEL_PASSPHRASE=keytunnel-container \
    KEYTUNNEL_LOG_LEVEL=info \
    NODE_ENV=production
EXPOSE 8090
# CTAPHID_INIT on the face the running `keytunnel soft --hid loopback:HOST:PORT` listens on.
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=5 CMD ["node", "/app/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/keytunnel.mjs"]
CMD ["soft", "--hid", "loopback:0.0.0.0:8090", "--allow-unauthenticated-remote-access", "--approve", "always", "--state-dir", "/home/keytunnel/state"]
