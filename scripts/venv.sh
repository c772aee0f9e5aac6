#!/usr/bin/env bash
# Creates a virtualenv with pinned tools on first use (or when the pins
# change). Safe to run every time.
#   scripts/venv.sh                 .venv from scripts/requirements.txt
#   scripts/venv.sh DIR REQUIREMENTS  another one (checkov's pins conflict
#                                     with SAM CLI's, so it has its own)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv}"
req="${2:-$root/scripts/requirements.txt}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "==> installing pinned tools into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
