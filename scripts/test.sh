#!/usr/bin/env bash
# The whole test suite, on a fresh machine or not: installs what is missing, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k silence).
set -euo pipefail
export SPEAKER_WITH_BROWSER=1  # the scraper tests drive real headless Chromium
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
exec "$PY" -m pytest "$@"
