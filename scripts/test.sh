#!/usr/bin/env bash
# One command: set up the virtual environment, run the lint, format, type and layer checks
# (ruff, mypy, import-linter's contracts in pyproject.toml), then the whole test suite, on
# SQLite and on a throwaway PostgreSQL that the tests start from the installed binaries.
# The suite runs in ALLCARE_TEST_PROCESSES pytest processes (pytest-xdist, default 2; 0 runs
# it in this process, as a debugger wants); each starts its own PostgreSQL and S3 server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh train,test
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest -n "${ALLCARE_TEST_PROCESSES:-2}" "$@"
