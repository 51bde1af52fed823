#!/usr/bin/env bash
# One command: set up the virtual environment and run lint and the whole test suite, on SQLite
# and on a throwaway PostgreSQL that the tests start from the installed binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh train,test
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest "$@"
