"""The README demo's LibriVox step and the local site as a program: scrape → manifest → dataset, offline."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from scrapers.librivox import demo
from scrapers.librivox.localsite import BOOKS

REPO = Path(__file__).resolve().parents[2]


def test_demo_scrapes_the_local_site_and_builds_a_dataset_of_its_readers(tmp_path):
    result = demo.run_demo(str(tmp_path / "lv"), ["--features", "audio"])
    ds = tmp_path / "lv" / "dataset"
    rows = [r.split("\t") for r in (ds / "speakers.tsv").read_text().splitlines()[1:]]
    # the readers the site served with audio, read alone, on a book page with a chapter table
    served = {f"librivox:{readers[0][0]}" for bid, b in BOOKS.items() if bid != "103"
              for _, readers, audio, _ in b["sections"] if audio and len(readers) == 1 and readers[0][0].isdigit()}
    assert {r[0] for r in rows} == served == {"librivox:501", "librivox:502", "librivox:503", "librivox:504"}
    meta = json.loads((ds / "dataset.json").read_text())
    c = meta["counts"]
    assert c["add_up"] and c["inputs"] == result["summary"]["chapters_kept"] == 8
    assert c["inputs"] == c["recordings_with_segments"] + c["rejected"] and c["rejected"] == 0
    assert sum(s["recordings"] for s in meta["splits"].values()) == c["recordings_with_segments"]
    assert all(not e.read_text().strip() for e in (ds / "errors").glob("*.jsonl"))
    assert "LibriVox demo: 4 readers, 8 chapters" in demo.summary_text(result)


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
