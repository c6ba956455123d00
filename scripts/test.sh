#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite against a real Docker engine.
# Extra arguments go to pytest, e.g. scripts/test.sh -k ws -x.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" --test
cd "$ROOT"
exec "${APPLIANCE_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
