# slipway-server: the model server (FastAPI + uvicorn), `python -m slipway serve` on :8080.
#
# Build from the repository root (the build context must hold pyproject.toml and uv.lock):
#   scripts/images.sh build server      (or: make images)
#
# PYTHON_BASE must provide python3 (full standard library) and pip; pip is used only in the
# builder stage, to install uv. An offline Debian base made with debootstrap works when it was
# made with `--include=python3,python3-pip,ca-certificates` (see docs/images.md).
ARG PYTHON_BASE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_BASE} AS builder

ARG UV_VERSION=0.13.9
# --target keeps uv out of the base interpreter's site-packages, so Debian's
# EXTERNALLY-MANAGED marker (PEP 668) does not apply and the base stays untouched.
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/uv "uv==${UV_VERSION}"

# UV_PYTHON_DOWNLOADS=never: the venv must use the base image's python3, which the runtime
#   stage has at the same path; a uv-managed interpreter would not be there.
# UV_NO_CACHE: no BuildKit cache mounts (the legacy builder and offline builders lack them);
#   the lock-file layer below is the cache.
# UV_SYSTEM_CERTS: trust the base image's CA store (a proxy's CA can be added there).
ENV PATH=/opt/uv/bin:$PATH \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_SYSTEM_CERTS=1

WORKDIR /src

# Dependencies first, from the lock file only: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project

# Then the project itself, installed as a wheel (non-editable), so /src is not needed at run time.
COPY README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN uv sync --locked --no-dev --no-editable

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_BASE} AS runtime

# uid/gid 10001: outside the range of system and distribution users; the Deployment's
# securityContext (runAsNonRoot) relies on a numeric USER.
RUN groupadd --system --gid 10001 slipway \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/slipway \
      --shell /usr/sbin/nologin slipway

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /home/slipway
USER 10001:10001
EXPOSE 8080

ARG VERSION=dev
ARG GIT_COMMIT=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="slipway-server" \
      org.opencontainers.image.description="slipway: model server (FastAPI), serves the version pinned by MODEL_VERSION" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV SLIPWAY_GIT_COMMIT=${GIT_COMMIT}

# No HEALTHCHECK: Kubernetes ignores it; the Deployment's readiness and liveness probes call the
# server's health routes instead.
# The server binds 0.0.0.0:8080 (uvicorn inside `slipway serve`).
ENTRYPOINT ["python", "-m", "slipway", "serve"]
