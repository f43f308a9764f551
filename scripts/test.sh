#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# One exported embedding model for the whole run, instead of one per test data directory.
export GROUNDWORK_MODEL_CACHE_DIR="${GROUNDWORK_MODEL_CACHE_DIR:-$PWD/.venv/groundwork-models}"
set +e
python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
# pytest exit 5 means "no tests collected": treat a filtered run with nothing to do as success.
if [ "$status" -eq 5 ]; then exit 0; fi
exit "$status"
