#!/usr/bin/env bash
# Sourced by scripts/demo.sh and scripts/test.sh: makes sure this machine has what the project needs.
#  - system tools: ffmpeg (decoding), espeak-ng (demo and test voices), sox (the seed-workflow
#    benchmark); installed with apt-get when
#    missing and possible. Without apt, ffmpeg falls back to the binary in the imageio-ffmpeg wheel.
#  - a virtual environment OUTSIDE the repository, keyed by the requirement files, reused between runs:
#    $SPEAKER_VENV, or ~/.cache/speaker-datasets/venv-py<ver>-<hash>.
# Exports PY (the venv's python) and PYTHONPATH (the repository).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "[bootstrap] $*" >&2; }

install_system_tools() {
  local missing=()
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  command -v sox >/dev/null 2>&1 || missing+=(sox)  # the seed-workflow benchmark
  if [ "${SPEAKER_WITH_BROWSER:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      log "missing ${missing[*]} and no root: continuing (ffmpeg comes from imageio-ffmpeg; demo voices are synthesised)"
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and no apt-get: continuing with the fallbacks"
    return 0
  fi
  log "installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

make_venv() {
  local pyver hash
  PYTHON="${SPEAKER_PYTHON:-python3}"
  pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  case "$pyver" in 3.10|3.11|3.12|3.13) ;; *) log "Python $pyver is not supported (3.10-3.13; 3.11 recommended)"; exit 1;; esac
  hash="$(cat "$REPO"/requirements/*.txt | sha256sum | cut -c1-12)"
  VENV="${SPEAKER_VENV:-$HOME/.cache/speaker-datasets/venv-py$pyver-$hash}"
  if [ ! -f "$VENV/.complete" ]; then
    log "creating $VENV (TensorFlow + Beam + tf.Transform: a few minutes, once)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -c "$REPO/requirements/constraints.txt" \
      -r "$REPO/requirements/base.txt" -r "$REPO/requirements/scrapers.txt" -r "$REPO/requirements/test.txt" >&2
    touch "$VENV/.complete"
  fi
  PY="$VENV/bin/python"
}

install_system_tools
make_venv
export PY
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
