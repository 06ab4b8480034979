# syntax=docker/dockerfile:1
# driftwatch worker / simulator image.
#   docker build -t driftwatch .
#   docker run --rm -e DRIFTWATCH_BOOTSTRAP_SERVERS=kafka:9092 -p 9464:9464 driftwatch
#
# The base image is pinned to an exact Python and Debian release. The dependencies are the
# exact versions and hashes of requirements.lock (regenerate it with scripts/lock.sh), so
# two builds of the same commit install the same packages.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 driftwatch \
    && useradd --system --uid 10001 --gid driftwatch \
        --home-dir /var/lib/driftwatch --create-home --shell /usr/sbin/nologin driftwatch

WORKDIR /src
# The locked dependencies first (a layer that changes only with the lock), every file
# checked against its hash; then the project itself, without resolving anything again.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
# README.md is the package long description; the wildcard keeps the build working without it.
COPY pyproject.toml README.md* ./
COPY detectors ./detectors
COPY stream ./stream
RUN pip install --no-deps . \
    && pip check \
    && cd / && rm -rf /src

# The worker keeps its local state (Faust data directory) in the working directory.
WORKDIR /var/lib/driftwatch
USER driftwatch:driftwatch
ENV HOME=/var/lib/driftwatch \
    MPLCONFIGDIR=/var/lib/driftwatch/.matplotlib \
    DRIFTWATCH_METRICS_PORT=9464

EXPOSE 9464

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRIFTWATCH_METRICS_PORT', '9464') + '/metrics', timeout=4).read(1)"]

CMD ["driftwatch", "worker"]
