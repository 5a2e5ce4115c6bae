# syntax=docker/dockerfile:1
# backpain-cds production image: gunicorn on 0.0.0.0:8080, production settings, as the fixed non-root user 10001.
# It refuses to start until trusted JWT clients and public_base_url are configured (mount a config file and set
# BPCDS_CONFIG, or set BPCDS_TRUSTED_CLIENTS_FILE and BPCDS_PUBLIC_BASE_URL). Configuration comes only from the
# environment and mounted files. It runs with a read-only root filesystem; the only paths it writes are
#   /tmp                    TMPDIR: gunicorn's worker heartbeat files; put BPCDS_METRICS_DIR under it (/tmp/metrics)
#   /var/lib/backpain-cds   the working directory: the default SQLite feedback store var/feedback.sqlite3
#                           (BPCDS_DATABASE_URL=postgresql://… writes nothing here)
# both declared as volumes (README "Scaling out"; deploy/kubernetes mounts emptyDirs there).

# --- build stage: the wheel, from only the files copied here, with a pinned build backend ---------------------------
# The same Python and Debian release as the service's stage, in the full image: it has the C compiler and headers that
# the compiled build needs (BPCDS_MYPYC=1: setup.py compiles the chart-reading modules with mypyc; README "Compiled
# build"). mypyc type-checks what it compiles, imports followed, so the service's own dependencies (the versions the
# service's stage installs) and the stubs of those that ship no types are installed here too. The wheel is then for
# this platform (cp311, linux); the service's stage installs the one built.
FROM python:3.11.14-bookworm AS wheel
ENV BPCDS_MYPYC=1
WORKDIR /src
COPY requirements/build.txt requirements/constraints.txt requirements/
RUN pip install --no-cache-dir --requirement requirements/build.txt --requirement requirements/constraints.txt
COPY pyproject.toml setup.py README.md ./
COPY cds_service ./cds_service
COPY hooks ./hooks
COPY cards_templates ./cards_templates
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- the service: the wheel and exactly the versions in requirements/constraints.txt --------------------------------
FROM python:3.11.14-slim-bookworm

# Only the environment is set here: a BPCDS_* variable outranks the config file, so anything else set here could not
# be changed by the mounted file. Production's own defaults do the rest (README: "What production changes").
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TMPDIR=/tmp \
    BPCDS_ENVIRONMENT=production

RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    --mount=type=bind,source=requirements/constraints.txt,target=/constraints.txt \
    set -- /wheels/backpain_cds-0.1.0-cp311-*.whl \
 && pip install --no-cache-dir --constraint /constraints.txt "$1[postgres,redis]" \
 && groupadd --system --gid 10001 backpain \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/backpain-cds --create-home --shell /usr/sbin/nologin backpain

USER 10001:10001
WORKDIR /var/lib/backpain-cds
VOLUME ["/tmp", "/var/lib/backpain-cds"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
CMD ["backpain-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
