#!/usr/bin/env bash
# The main job end to end on the embedded demo corpus (generated offline), DirectRunner, local folders.
# Usage: scripts/demo.sh [OUT_DIR]   (default: ./demo; the corpus goes to OUT_DIR/corpus, the dataset
# to OUT_DIR/dataset). Extra arguments after OUT_DIR go to pipelines.build_dataset.
# Then the LibriVox step: a local LibriVox site on 127.0.0.1 scraped by the real scraper into
# OUT_DIR/librivox (manifest.jsonl, audio/) and built into OUT_DIR/librivox/dataset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
OUT="${1:-$REPO/demo}"
shift || true
"$PY" -m demos.end_to_end --output "$OUT" "$@"
echo
echo "== LibriVox: local site -> python -m scrapers.librivox -> manifest -> pipelines.build_dataset =="
exec "$PY" -m demos.librivox "$OUT/librivox"
