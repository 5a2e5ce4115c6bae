# backpain-cds production image: gunicorn on 0.0.0.0:8080, production settings.
# It refuses to start until trusted JWT clients are configured (mount a config file and set BPCDS_CONFIG).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BPCDS_ENVIRONMENT=production \
    BPCDS_DEV_PAGES=false \
    BPCDS_FHIR_ALLOW_LOOPBACK=false \
    BPCDS_CORS_ORIGINS='[]' \
    BPCDS_FHIR_ALLOWED_ORIGINS='[]' \
    BPCDS_DATABASE_URL=sqlite:////var/lib/backpain-cds/feedback.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY hooks ./hooks
COPY cards_templates ./cards_templates
RUN pip install --no-cache-dir '.[postgres,redis]' \
 && useradd --system --home /var/lib/backpain-cds --create-home backpain

USER backpain
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
CMD ["backpain-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
