# syntax=docker/dockerfile:1
#
# Herald image: one image for every role (migrate, workers, beat, Flower, CLI).
#
#   docker build -t herald:latest .
#   docker run --rm herald:latest herald --help
#
# Both stages use the same base image: wheels with C extensions must run on the
# libc they were built against (tests/unit/test_deploy_files.py checks it).
#
# Build argument PG_MAJOR: major version of pg_dump/pg_restore; keep it equal to
# the server's (docker-compose.yml runs postgres:16). pg_dump refuses a newer
# server, and an older server may reject what a newer pg_dump wrote.

# --- builder: the project's wheel and the wheels of its dependencies ----------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The whole (filtered, see .dockerignore) context: the build backend decides
# which files of pyproject.toml's packages end up in the wheel.
COPY . .

RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip wheel --wheel-dir /wheels --find-links /wheels /wheels/*.whl

# --- runtime -------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ARG PG_MAJOR=16

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# postgresql-client-${PG_MAJOR} from the PostgreSQL project's apt repository
# (Debian ships only one client major per release). The repository's signing key
# comes inside Debian's postgresql-common package; nothing is piped from curl.
# Versions are not pinned: Debian and PGDG drop superseded versions from their
# archives (security updates), so a pin would break the next rebuild; the base
# image tag and PG_MAJOR are what pin this layer.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/* \
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
