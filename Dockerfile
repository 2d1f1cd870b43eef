# syntax=docker/dockerfile:1
# The Catalyst gateway: `docker build -t catalyst-mcp .` (docs/deploy.md).
#
# Two stages: the build stage has a compiler and pip's caches and builds the virtualenv; the
# runtime stage copies only that virtualenv onto a slim Python, adds Node.js and npm (npm
# packages: `catalyst packages install`), uv (PyPI packages, installed into the virtualenv) and
# tini (PID 1: forwards signals and reaps the stdio servers' orphans), and runs as a non-root
# user whose home holds all state.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/catalyst \
    && /opt/catalyst/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/catalyst/bin/pip install --no-cache-dir ".[s3,kubernetes]" uv

FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 catalyst \
    && useradd --system --uid 10001 --gid catalyst --home-dir /var/lib/catalyst \
        --create-home --shell /usr/sbin/nologin catalyst
COPY --from=build /opt/catalyst /opt/catalyst
COPY deploy/docker/catalyst.yaml /etc/catalyst/catalyst.yaml
# Every setting can be given as CATALYST_<SECTION>__<NAME> (docs/configuration.md); these are
# the image's defaults. Listening beyond the container's loopback needs auth.enabled (or
# gateway.allow_non_loopback): set CATALYST_AUTH__ENABLED=true when running it.
ENV PATH=/opt/catalyst/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/catalyst \
    XDG_STATE_HOME=/var/lib/catalyst/state \
    XDG_CACHE_HOME=/var/lib/catalyst/cache \
    CATALYST_CONFIG=/etc/catalyst/catalyst.yaml \
    CATALYST_GATEWAY__HOST=0.0.0.0 \
    CATALYST_GATEWAY__PORT=8765 \
    CATALYST_GATEWAY__WORKERS=1
USER catalyst:catalyst
WORKDIR /var/lib/catalyst
VOLUME ["/var/lib/catalyst"]
EXPOSE 8765
# /health: the process answers (liveness); /ready says whether its servers and stores are up
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CATALYST_GATEWAY__PORT', '8765'), timeout=2)"
ENTRYPOINT ["tini", "--", "catalyst"]
CMD ["serve"]
