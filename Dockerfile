# syntax=docker/dockerfile:1
# The Hue super-app host: one image for the web workers, the push worker and the migration one-shot.
#   docker build -t hue-superapp .
#   docker run --rm hue-superapp --help
# Everything is configured with SUPERAPP_* variables (README "Configuration"); compose.yaml wires a city.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels of the package and its dependencies, so no compiler or pip cache reaches the image ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the package is built from (.dockerignore keeps tests, benchmarks and local state out).
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY plugins ./plugins
COPY push ./push
COPY miniapps ./miniapps
RUN python -m venv /opt/superapp \
    && /opt/superapp/bin/pip install --upgrade pip setuptools wheel \
    && /opt/superapp/bin/pip install . \
    && /opt/superapp/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: the virtual environment alone, run by an unprivileged user ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hue-superapp" \
      org.opencontainers.image.description="Hue super-app host: identity, feed, push and pluggable mini-apps"
ENV PATH=/opt/superapp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SUPERAPP_VAR_DIR=/var/lib/superapp \
    SUPERAPP_MEDIA_DIR=/var/lib/superapp/media
RUN groupadd --system --gid 10001 superapp \
    && useradd --system --uid 10001 --gid superapp --home-dir /var/lib/superapp --shell /usr/sbin/nologin superapp \
    && mkdir -p /var/lib/superapp/media \
    && chown -R superapp:superapp /var/lib/superapp
COPY --from=build /opt/superapp /opt/superapp
USER superapp
WORKDIR /var/lib/superapp
EXPOSE 8000
# Liveness only (/readyz also checks the database and the broker, which would restart healthy
# workers during a database failover). A push-worker container overrides it: it serves no HTTP.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["superapp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
