# syntax=docker/dockerfile:1
# Creditgate's image: `docker build -t creditgate .`, then
#   docker run -e CREDITGATE_REDIS=redis://redis:6379/0 -p 7070:7070 -p 7072:7072 creditgate
#
# tests/deploy/test_dockerfile.py replays this recipe without a Docker engine: the builder's RUN
# steps run in a temporary folder with the path variables (VENV, BUILD_VENV, WORKDIR) moved
# there. So every RUN is a plain POSIX shell command that reads its paths from ENV, never a
# literal absolute path, and the final stage only copies: its one RUN creates the user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: generate the gRPC code from proto/, install creditgate into a venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV VENV=/opt/venv \
    BUILD_VENV=/opt/build-venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the build reads. .dockerignore keeps the checked-in sidecar/rpc/gen out of the
# context, so the image's generated code is always made here from the .proto files.
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY sidecar/ sidecar/
# protoc lives in a venv of its own that the final stage never sees. The dev extra's exact pin.
RUN python -m venv "$BUILD_VENV" \
 && "$BUILD_VENV/bin/pip" install --no-cache-dir "grpcio-tools==1.85.1"
RUN mkdir -p sidecar/rpc/gen \
 && "$BUILD_VENV/bin/python" proto/generate.py
# The runtime venv has no pip or setuptools: the build venv's pip installs into it. The package
# is built from the source as a wheel (not editable), so the venv needs nothing from /src.
RUN python -m venv --without-pip "$VENV" \
 && "$BUILD_VENV/bin/pip" --python "$VENV/bin/python" install --no-cache-dir .

# --- runtime: the same base image (the venv's python links to it), the venv, a catalog ---
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="creditgate" \
      org.opencontainers.image.description="Sidecar that enforces credits, budgets and quotas in the request path of AI products" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --gid 10001 creditgate \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/creditgate \
    --shell /usr/sbin/nologin creditgate
ENV VENV=/opt/venv
# Owned by root and read-only to the service user.
COPY --from=builder $VENV $VENV
# A default catalog so the image starts as is; mount your own over it (it reloads on change).
COPY policies/example.yaml /etc/creditgate/catalog.yaml
# CREDITGATE_HOST: the code defaults to 127.0.0.1, which inside a container only its own pod
# could reach, so `docker run -p 7070:7070` would get nothing. The container's network namespace
# is the boundary here, hence 0.0.0.0; the Helm chart sets 127.0.0.1 for the sidecar, where the
# gateway shares the pod's localhost. The admin listeners run only with CREDITGATE_ADMIN_TOKEN
# and their ports are not exposed. /metrics, /healthz and /readyz get a listener of their own
# on 9464 for Prometheus and kubelet probes (the ledger's too, when the image runs
# `ledger serve`); `creditgate health` checks that one.
# CREDITGATE_REDIS has no default: `serve` stops at once, naming it, when it is missing.
ENV PATH="$VENV/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDITGATE_CATALOG=/etc/creditgate/catalog.yaml \
    CREDITGATE_HOST=0.0.0.0 \
    CREDITGATE_METRICS_HOST=0.0.0.0 \
    CREDITGATE_METRICS_PORT=9464 \
    CREDITGATE_LEDGER_METRICS_HOST=0.0.0.0 \
    CREDITGATE_LEDGER_METRICS_PORT=9464
WORKDIR /home/creditgate
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 7070 7072 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["creditgate", "health"]
ENTRYPOINT ["creditgate"]
CMD ["serve"]
