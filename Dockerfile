# backpain-cds production image: gunicorn on 0.0.0.0:8080, production settings.
# It refuses to start until trusted JWT clients and public_base_url are configured (mount a config file and set
# BPCDS_CONFIG, or set BPCDS_TRUSTED_CLIENTS_FILE and BPCDS_PUBLIC_BASE_URL).
FROM python:3.11-slim

# Only the environment is set here: a BPCDS_* variable outranks the config file, so anything else set here could not
# be changed by the mounted file. Production's own defaults do the rest (README: "What production changes").
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BPCDS_ENVIRONMENT=production

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY hooks ./hooks
COPY cards_templates ./cards_templates
RUN pip install --no-cache-dir '.[postgres,redis]' \
 && useradd --system --home /var/lib/backpain-cds --create-home backpain

USER backpain
WORKDIR /var/lib/backpain-cds
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
CMD ["backpain-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
