#!/usr/bin/env bash
# Set up, ingest data/samples/, answer a sample question, then serve the API on
# http://127.0.0.1:8000 in dev mode (loopback only, auth off) until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
groundwork ingest data/samples
groundwork ask "How many days of paid annual leave do employees get?"
exec groundwork serve --dev --host 127.0.0.1 --port "${PORT:-8000}"
