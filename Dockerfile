# The radnlp service: HTTP API (8000), MLLP listener (2575) and worker in one process, on a
# SQLite file in /data by default; set RADNLP_DATABASE_URL=postgresql+psycopg://... for
# PostgreSQL, and run more `radnlp worker` containers against it to scale out.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    RADNLP_DATABASE_URL=sqlite:////data/radnlp.db \
    RADNLP_HTTP_HOST=0.0.0.0 \
    RADNLP_MLLP_HOST=0.0.0.0

WORKDIR /app
# The CPU build of torch first, so the project's pin does not pull a CUDA build; a GPU image for
# backfills: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 --build-arg
# EXTRAS=[scale] (Ray, see nlp_service/deploy/).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY nlp_service nlp_service
COPY pipelines pipelines
COPY terminology terminology
COPY annotations annotations
RUN pip install ".${EXTRAS}" \
    && useradd --system --uid 10001 --home-dir /data radnlp \
    && mkdir -p /data && chown radnlp /data

USER radnlp
VOLUME ["/data"]
EXPOSE 8000 2575
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/fhir/metadata')"
CMD ["radnlp", "serve"]
