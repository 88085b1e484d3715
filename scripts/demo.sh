#!/usr/bin/env bash
# The main job end to end on the embedded demo corpus (generated offline), DirectRunner, local folders.
# Usage: scripts/demo.sh [OUT_DIR]   (default: ./demo; the corpus goes to OUT_DIR/corpus, the dataset
# to OUT_DIR/dataset). Extra arguments after OUT_DIR go to pipelines.build_dataset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
OUT="${1:-$REPO/demo}"
shift || true
exec "$PY" -m pipelines.demo --out "$OUT" "$@"
