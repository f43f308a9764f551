#!/usr/bin/env bash
# Create .venv and install Groundwork with its test tools. Safe to re-run (fast when done).
# torch is installed first and pinned (==2.13.0) so a CPU machine takes the CPU build and
# never downloads CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.groundwork-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# DOC and PPT are converted by LibreOffice; without it those files fail alone with
# unsupported_type (and a message saying so). Install it where we can (root + apt).
if ! command -v soffice >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing LibreOffice (writer, impress) for DOC/PPT parsing" >&2
  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
     libreoffice-writer-nogui libreoffice-impress-nogui >/dev/null) \
   || echo "setup: LibreOffice could not be installed; DOC/PPT files will fail with unsupported_type" >&2
fi
# OCR (images, scanned PDF pages) reads with Tesseract: the tesserocr wheel carries the library,
# the language models come from Debian. Without them images fail alone with unsupported_type and
# scanned PDFs with no_extractable_text, each saying what is missing.
tessdata_found() { ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata /usr/share/tesseract-ocr/*/tessdata/osd.traineddata >/dev/null 2>&1; }
if ! tessdata_found && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Tesseract's English and orientation models for OCR" >&2
  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
     tesseract-ocr-eng tesseract-ocr-osd >/dev/null) \
   || echo "setup: Tesseract models could not be installed; images and scanned PDF pages will not be OCR'd" >&2
fi
# The web console's tests drive a real headless browser: Debian's chromium and its chromedriver.
# Without them those tests skip, saying so; the console itself needs no browser on the server.
if ! command -v chromedriver >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing chromium and chromium-driver for the console's browser tests" >&2
  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
     chromium chromium-driver >/dev/null) \
   || echo "setup: chromium could not be installed; the console's browser tests will skip" >&2
fi
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
# [ray]: the distributed-ingestion tests start a real local Ray cluster (tests/ingest/test_ray_ingest.py).
python -m pip install -q -e ".[test,ray]"
if python -c "import torch,sys; sys.exit(0 if torch.version.cuda else 1)" && ! command -v nvidia-smi >/dev/null; then
  echo "setup: a CUDA build of torch was installed on a machine without a GPU" >&2
  exit 1
fi
echo "$want" > "$stamp"
