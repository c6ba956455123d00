#!/usr/bin/env bash
# Set up (if needed) and run the appliance on http://127.0.0.1:8080.
# Extra arguments go to `appliance serve`, e.g. scripts/run.sh --port 9000.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "${APPLIANCE_VENV:-$ROOT/.venv}/bin/python" -m appliance serve "$@"
