#!/usr/bin/env bash
# One command: set up the virtual environment and run the server on its embedded defaults
# (SQLite and images under ./storage, port 8000). Settings come from the environment (README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh train
exec .venv/bin/allcare serve "$@"
