# kap-cds: CDS Hooks service for ketamine-assisted psychotherapy.
#   docker build -t kap-cds .
#   docker run -p 8080:8080 -e KAP_CDS_TRUSTED_ISSUERS='[...]' -e KAP_CDS_DATABASE_URL=postgresql://... kap-cds
# Binding 0.0.0.0 (as here) is for production behind JWT auth: set KAP_CDS_TRUSTED_ISSUERS.
# Laptop try-out with the example data only (open, no JWT; see deploy/README.md):
#   docker run --rm -p 127.0.0.1:8080:8080 -e KAP_CDS_OPEN_TRYOUT=true \
#     -e KAP_CDS_FACILITY_TIMEZONE=Europe/Berlin kap-cds

# --- build: durable-rules compiles a C extension (gcc); the runtime image carries no compiler ---
FROM python:3.11-slim AS build
# gcc and libc6-dev follow the base image's Debian release (see .hadolint.yaml, DL3008).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kap-cds
WORKDIR /src
# The lock file first: exact versions with hashes (make lock), a layer that changes rarely.
COPY requirements.lock ./
RUN /opt/kap-cds/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY cds ./cds
# --no-deps: every dependency came from the lock above.
RUN /opt/kap-cds/bin/pip install --no-deps .

# --- runtime ---
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kapcds \
    && mkdir -p /var/lib/kap-cds/spool \
    && chown -R kapcds: /var/lib/kap-cds
COPY --from=build /opt/kap-cds /opt/kap-cds
# The rule files are the audited artefact: shipped beside the package, read-only. Their
# fixtures too, so `kap-cds rules test` and `rules report` inside the image run every one.
COPY --chown=root:root rules /app/rules
COPY --chown=root:root fhir_examples /app/fhir_examples
ENV PATH=/opt/kap-cds/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAP_CDS_RULES_DIR=/app/rules \
    KAP_CDS_STATE_DIR=/var/lib/kap-cds
WORKDIR /app
USER 10001
# The audit spool (and the default SQLite store) must outlive the container: mount a volume.
VOLUME ["/var/lib/kap-cds"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["kap-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
