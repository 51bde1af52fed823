#!/usr/bin/env bash
# One command: set up the virtual environment, run lint, format and type checks (ruff, mypy),
# then the whole test suite, on SQLite and on a throwaway PostgreSQL that the tests start from
# the installed binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh train,test
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
