#!/usr/bin/env bash
# Creates .venv and installs AllCare Server into it, with the extras asked for (e.g. "train" or
# "train,test"; none: the serving-only install, without PyTorch).
# Installs only when the venv is missing or pyproject.toml / the extras changed since the last
# install (a stamp in .venv), so a restart on a LAN without a package index touches no network.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
stamp=.venv/.allcare-install-stamp
project="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed() {
  # Every install of this pyproject.toml has the base dependencies; an extra counts once an
  # install of this project named it (so "train" is satisfied by "train,test").
  local wanted line
  for wanted in ${extras//,/ }; do
    line="$(grep "^$project extras=" "$stamp" | grep -E "[=,]$wanted(,|$)" || true)"
    [ -n "$line" ] || return 1
  done
  grep -q "^$project " "$stamp"
}
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && installed; then exit 0; fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "Installing AllCare Server into .venv (new venv, or pyproject.toml or extras changed)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
{ grep "^$project " "$stamp" 2>/dev/null || true; echo "$project extras=$extras"; } > "$stamp.new"
mv "$stamp.new" "$stamp"
