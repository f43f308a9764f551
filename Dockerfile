# CPU image running the Groundwork API. Build: docker build -t groundwork .
# Run:  docker run -p 8000:8000 -v gw-data:/data -e GROUNDWORK_AUTH=required groundwork
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GROUNDWORK_DATA_DIR=/data GROUNDWORK_HOST=0.0.0.0 GROUNDWORK_PORT=8000
# libmagic1: file type names; tesseract-ocr-eng/-osd: OCR models (tesserocr's wheel brings the library).
RUN apt-get update && apt-get install -y --no-install-recommends libmagic1 tesseract-ocr-eng tesseract-ocr-osd \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY index ./index
COPY ingest ./ingest
COPY service ./service
# CPU wheels of torch only: no CUDA libraries in the image.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install .
VOLUME /data
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/v1/health'); sys.exit(0)"
CMD ["groundwork", "serve"]
