#!/usr/bin/env bash
# Creates .venv and installs AllCare Server into it, with the extras asked for (e.g. "test").
# Installs only when the venv is missing or pyproject.toml / the extras changed since the last
# install (a stamp in .venv), so a restart on a LAN without a package index touches no network.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
stamp=.venv/.allcare-install-stamp
project="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ -f "$stamp" ]; then
  # Every install has the base dependencies; extras must have been installed by name.
  if [ -z "$extras" ] && grep -q "^$project " "$stamp"; then exit 0; fi
  if grep -qxF "$project extras=$extras" "$stamp"; then exit 0; fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "Installing AllCare Server into .venv (new venv, or pyproject.toml or extras changed)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
{ grep "^$project " "$stamp" 2>/dev/null || true; echo "$project extras=$extras"; } > "$stamp.new"
mv "$stamp.new" "$stamp"
