# syntax=docker/dockerfile:1.7
#
# Tongxing: one image, two entry points.
#
#   docker run IMAGE                      the gateway: tongxing serve --host=0.0.0.0 --port=8080
#                                         (granian; `serve --server=waitress` is the fallback)
#   docker run IMAGE operator --namespace tongxing    the operator (tongxing operator ...)
#
# Settings come from TONGXING_* (gateway) and TONGXING_OPERATOR_* (operator) variables; the image
# holds no secret and no default for one. The Helm chart (charts/tongxing) runs both.
#
# Build:  docker build -t tongxing .
# Behind a TLS-intercepting proxy, give pip the proxy's CA as a build secret (never a layer):
#         docker build --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt -t tongxing .
#
# The base is pinned by digest. Refresh it deliberately:
#         docker buildx imagetools inspect python:3.11-slim-bookworm
# BASE_IMAGE may name another Debian 12 image with python3 (3.11) and python3-venv.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# --- build: dependencies from the hashed lock, then the tongxing wheel -------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The lock files alone first: this layer is reused until a dependency changes.
COPY requirements.lock requirements-build.lock ./
RUN --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/tongxing \
    && /opt/tongxing/bin/pip install --require-hashes --no-deps -r requirements.lock \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps -r requirements-build.lock
# What the wheel is made of (.dockerignore lets nothing else in).
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY policies policies
COPY realms realms
COPY operator/realm_operator operator/realm_operator
COPY operator/crds operator/crds
COPY tongxing_demo tongxing_demo
COPY tongxing_api tongxing_api
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && /opt/tongxing/bin/pip install --no-deps --no-index /wheels/tongxing-*.whl \
    && /opt/tongxing/bin/pip check \
    && /opt/tongxing/bin/tongxing --version

# --- runtime: the virtual environment, a non-root user, nothing else ---------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tongxing" \
      org.opencontainers.image.description="Tongxing OpenID Connect federation gateway and operator" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 tongxing \
    && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin tongxing \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/tongxing
COPY --from=build /opt/tongxing /opt/tongxing
# Bytecode was compiled at install; the root filesystem may be read-only (the chart makes it so).
ENV PATH=/opt/tongxing/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TONGXING_DATA_DIR=/var/lib/tongxing \
    HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
USER 10001:10001
WORKDIR /var/lib/tongxing
EXPOSE 8080
# The gateway's liveness; for the operator set HEALTHCHECK_URL to its --liveness endpoint.
# (Kubernetes ignores HEALTHCHECK: the chart's probes call /healthz and /readyz.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["tongxing"]
CMD ["serve", "--host=0.0.0.0", "--port=8080", "--server=granian"]
