#!/usr/bin/env bash
# Create .venv (Python 3.11/3.12) and install jaxseg with its dev tools; a no-op when the
# install is newer than pyproject.toml, so the README commands are quick the second time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  py=""
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
      py=$candidate
      break
    fi
  done
  [ -n "$py" ] || { echo "setup: jaxseg needs Python 3.11 or 3.12 on PATH" >&2; exit 1; }
  "$py" -m venv .venv
fi
stamp=.venv/.jaxseg-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
