#!/usr/bin/env bash
# The whole test suite, on a fresh machine or not: installs what is missing, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k silence).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
exec "$PY" -m pytest "$@"
