#
# Herald image: one image for every role (migrate, workers, beat, Flower, CLI).
#
#   docker build -t herald:latest .
#   docker run --rm herald:latest herald --help
#
# No `# syntax=` line: the Dockerfile frontend built into the engine (BuildKit, Docker
# 20.10 and later) reads it, so nothing is pulled that the builder did not name.
#
# Build arguments (the defaults are the public images; deploy/stack/stack-test.sh
# overrides them on machines without an image registry):
#   BASE_IMAGE  Debian bookworm-family image with Python 3.11 (`python` on PATH, venv).
#               Both stages use it: wheels with C extensions must run on the libc they
#               were built against (tests/unit/test_deploy_files.py checks it).
#   PG_SOURCE   where pg_dump/pg_restore come from: `pgdg` (the PostgreSQL project's apt
#               repository, any major) or `debian` (the base's own archive, which
#               ships one major per release: 15 on bookworm).
#   PG_MAJOR    their major version; keep it equal to the server's (docker-compose.yml
#               runs postgres:16). pg_dump refuses a newer server, and an older server
#               may reject what a newer pg_dump wrote.
#
# A CA bundle for a TLS-intercepting proxy can be passed without entering any layer:
#   docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt .
# It is mounted only while apt and pip run (RUN --mount=type=secret).

ARG BASE_IMAGE=python:3.11-slim

# --- builder: the project's wheel and the wheels of its dependencies ----------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

WORKDIR /src

# The whole (filtered, see .dockerignore) context: the build backend decides
# which files of pyproject.toml's packages end up in the wheel.
COPY . .

# pip runs from a venv: a distribution's Python (PEP 668) lets no pip touch its own
# site-packages, and the official image's behaves the same way inside one. pip's
# cache is a build cache mount: rebuilds after a code change download nothing again,
# and no layer holds it.
RUN --mount=type=secret,id=ca_bundle \
    --mount=type=cache,target=/root/.cache/pip \
    if [[ -s /run/secrets/ca_bundle ]]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && python -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/build/bin/pip wheel --wheel-dir /wheels --find-links /wheels /wheels/*.whl

# --- runtime -------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG PG_SOURCE=pgdg
ARG PG_MAJOR=16

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# postgresql-client-${PG_MAJOR}: from the PostgreSQL project's apt repository
# (PG_SOURCE=pgdg; Debian ships only one client major per release), whose signing
# key comes inside Debian's postgresql-common package (nothing is piped from curl),
# or from the base's own archive (PG_SOURCE=debian).
# Versions are not pinned: Debian and PGDG drop superseded versions from their
# archives (security updates), so a pin would break the next rebuild; the base
# image tag and PG_MAJOR are what pin this layer.
# hadolint ignore=DL3008
RUN --mount=type=secret,id=ca_bundle \
    if [[ -s /run/secrets/ca_bundle ]]; then \
        echo 'Acquire::https::CaInfo "/run/secrets/ca_bundle";' > /etc/apt/apt.conf.d/99build-ca; \
    fi \
    && apt-get update \
    && case "${PG_SOURCE}" in \
        pgdg) apt-get install -y --no-install-recommends ca-certificates postgresql-common \
              && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y ;; \
        debian) ;; \
        *) echo "PG_SOURCE must be pgdg or debian, not ${PG_SOURCE}" >&2; exit 2 ;; \
    esac \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99build-ca \
    && pg_dump --version

RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /home/herald \
        --create-home --shell /usr/sbin/nologin herald \
    && install -d -o herald -g herald -m 0750 /var/lib/herald /var/lib/herald/backups

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only what the wheels declare gets installed, and only from the wheels built
# above (--no-index): the runtime stage never resolves against PyPI.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "${VIRTUAL_ENV}" \
    && pip install --no-index --find-links /wheels /wheels/*.whl

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HERALD_ENV=production \
    BACKUP_DIR=/var/lib/herald/backups

WORKDIR /app

# `herald migrate` runs Alembic from here (celeryconfig.py ships in the wheel).
COPY alembic.ini ./
COPY migrations/ ./migrations/

USER 10001:10001

# Flower, `herald health --serve` (/healthz, /readyz), each process's /metrics.
EXPOSE 5555 9800 9808

HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["herald", "health"]

CMD ["herald", "--help"]
