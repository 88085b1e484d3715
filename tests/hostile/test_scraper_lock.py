"""One scrape per output folder at a time (scrapers/output.py `exclusive`, OUT/.lock), with real second processes:
the second run refuses at once (exit 2, one line, no request); a SIGKILLed run leaves no stale lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scrapers.librivox.localsite import make_mp3
from scrapers.output import LOCK_FILE, OutputBusy, exclusive
from tests.hostile.server import paced, serve_file
from tests.hostile.sites import LibriVoxSite, YouTubeSite

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def cli(module: str, out: Path, base: str, *flags: str):
    return [sys.executable, "-m", module, "--out", str(out), "--base-url", base, "--min-interval", "0",
            "--no-progress", *flags]


def test_the_lock_is_exclusive_per_open_and_leaves_no_trace_when_nothing_was_written(tmp_path):
    out = tmp_path / "o"
    with exclusive(str(out)):
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputBusy, match=r"--output .* is in use by another scrape \(pid \d+\)"):
            with exclusive(str(out)):
                pass
    assert not out.exists()  # created for the lock, nothing else written: removed again
    out.mkdir()
    (out / "manifest.jsonl").write_text("")
    with exclusive(str(out)):
        pass
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "manifest.jsonl"]


def test_a_youtube_scrape_into_a_locked_out_exits_2_before_any_request(tmp_path):
    out = tmp_path / "o"
    urls = tmp_path / "urls.txt"
    urls.write_text("https://www.youtube.com/watch?v=goodVideo01\n")
    with YouTubeSite() as site, exclusive(str(out)):  # this test process is the first run
        t0 = time.monotonic()
        proc = subprocess.run(cli("scrapers.youtube", out, site.base, "--urls", str(urls)), cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last == (f"python -m scrapers.youtube: error: --output {out} is in use by another scrape "
                        f"(pid {os.getpid()}); wait for it to finish or use another --output")
        assert site.requests == [] and elapsed < 60
    assert not out.exists()  # the second run wrote nothing (and the first, this test, removed its lock folder)


@pytest.mark.slow
def test_two_librivox_processes_one_out_then_a_sigkill_leaves_no_stale_lock(tmp_path):
    audio = tmp_path / "a.mp3"
    make_mp3(audio, 220.0, 3)
    data = audio.read_bytes()
    out = tmp_path / "o"
    with LibriVoxSite() as site:
        site.book("8", [(1, "501", "Ann", "slow.mp3", 3)])
        site.audio("slow.mp3", paced(data, 1024, 0.5))  # ~12 s: the first run is mid-download for a while
        cmd = cli("scrapers.librivox", out, site.base, "--book-id", "8", "--timeout", "5")
        first = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            part = out / "audio" / "501" / "8-001.mp3.part"
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size > 0):
                assert first.poll() is None and time.monotonic() < deadline, "the first run ended early"
                time.sleep(0.05)
            before = len(site.requests)
            t0 = time.monotonic()
            second = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
            assert second.returncode == 2 and time.monotonic() - t0 < 30
            last = second.stderr.strip().splitlines()[-1]
            assert last.startswith("python -m scrapers.librivox: error: --output") and f"(pid {first.pid})" in last
            assert len(site.requests) == before  # the second run sent nothing
            assert first.poll() is None  # and did not disturb the first
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        assert (out / LOCK_FILE).exists()  # the file stays; the flock died with the process
        site.audio("slow.mp3", serve_file(data))
        third = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert third.returncode == 0, third.stderr
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(l)["id"] for l in lines] == ["librivox-8-001"]  # once, complete
    assert (out / "audio" / "501" / "8-001.mp3").read_bytes() == data
