"""The local LibriVox (scrapers/librivox/localsite.py) run as a program, as the demo and scripts/demo.sh start it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_localsite_runs_as_a_program_until_killed(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "scrapers.librivox.localsite", "--port", "0", "--dir",
                             str(tmp_path / "audio")], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "/api/feed/audiobooks/?format=json&id=101", timeout=10) as r:
            assert json.loads(r.read())["books"]["0"]["title"] == "Solo Book"
        with urllib.request.urlopen(base + "/audio/a1_64kb.mp3", timeout=10) as r:
            assert r.read() == (tmp_path / "audio" / "a1_64kb.mp3").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
