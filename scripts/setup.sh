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
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
if python -c "import torch,sys; sys.exit(0 if torch.version.cuda else 1)" && ! command -v nvidia-smi >/dev/null; then
  echo "setup: a CUDA build of torch was installed on a machine without a GPU" >&2
  exit 1
fi
echo "$want" > "$stamp"
