# CPU image running the Groundwork API. Build: docker build -t groundwork .
# Run:  docker run -p 8000:8000 -v gw-data:/data -e GROUNDWORK_AUTH=required groundwork
# Checked without a Docker daemon by tests/test_dockerfile.py (sources, entrypoint, user, healthcheck).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GROUNDWORK_DATA_DIR=/data GROUNDWORK_HOST=0.0.0.0 GROUNDWORK_PORT=8000 \
    GROUNDWORK_MODEL_CACHE_DIR=/opt/groundwork/models
# The apt packages scripts/setup.sh installs: libmagic1 names file types; LibreOffice (writer,
# impress) converts DOC and PPT; tesseract-ocr-eng/-osd are the OCR models (tesserocr's wheel
# brings the library).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmagic1 libreoffice-writer-nogui libreoffice-impress-nogui tesseract-ocr-eng tesseract-ocr-osd \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY index ./index
COPY ingest ./ingest
COPY service ./service
# CPU wheels of torch only: no CUDA libraries in the image.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install .
# Warm the model export cache at build time: the first start would otherwise spend a minute
# exporting the embedder for the CPU backend (and need a writable cache to do it).
RUN python -c "from index.settings import Settings; from ingest.embedder_st import SentenceTransformerEmbedder; \
SentenceTransformerEmbedder.from_settings(Settings()).embed_documents(['warm the export cache'])" \
    && chmod -R a+rX /opt/groundwork
# Run as an unprivileged user that owns only the data volume.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin groundwork \
    && mkdir -p /data && chown groundwork:groundwork /data
USER groundwork
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4).status == 200 else 1)"
CMD ["groundwork", "serve"]
