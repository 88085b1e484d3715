"""A scrape whose every request to a host failed to connect says so in its summary ("could not reach HOST:
REASON"), instead of only "run the same command again"; a host that answered, even with errors, is not named."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scrapers.http import FetchError, PoliteSession

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_the_session_names_only_hosts_that_never_answered(server):
    port = closed_port()
    session = PoliteSession(allowed_hosts=("127.0.0.1",), min_interval=0, max_retries=1, backoff_base=0,
                            respect_robots=False)
    with pytest.raises(FetchError):
        session.get(f"http://127.0.0.1:{port}/api")
    session.get(server.base + "/no-such-page", accept=(404,))  # an answer, if a 404
    answered = server.base.split("//", 1)[1]
    assert session.unreachable() == {f"127.0.0.1:{port}": "Connection refused"}
    assert answered not in session.unreachable()


def test_librivox_summary_says_the_host_could_not_be_reached(tmp_path):
    port, out = closed_port(), tmp_path / "lv"
    proc = scrape("scrapers.librivox", "--output", out, "--base-url", f"http://127.0.0.1:{port}", "--retries", "1",
                  "--backoff", "0", "--min-interval", "0", "--no-progress")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert f"could not reach 127.0.0.1:{port}: Connection refused" in lines
    assert any("check --base-url and the network, then run the same command again" in ln for ln in lines)
    summary = json.loads((out / "scrape.json").read_text())["last_summary"]
    assert summary["unreachable"] == {f"127.0.0.1:{port}": "Connection refused"}


def test_librivox_summary_names_no_host_when_the_site_answers(server, tmp_path):
    out = tmp_path / "lv"
    proc = scrape("scrapers.librivox", "--output", out, "--base-url", server.base, "--min-interval", "0",
                  "--max-readers", "1", "--dry-run", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "could not reach" not in proc.stdout and "readers found:" in proc.stdout


def test_youtube_summary_says_the_host_could_not_be_reached(tmp_path):
    port, out = closed_port(), tmp_path / "yt"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"http://127.0.0.1:{port}/watch?v=abcdefghijk\n")
    proc = scrape("scrapers.youtube", "--output", out, "--base-url", f"http://127.0.0.1:{port}", "--urls", urls,
                  "--speaker", "someone", "--retries", "0", "--min-interval", "0", "--sleep", "0", "--max-sleep", "0",
                  "--sleep-requests", "0", "--no-progress")
    assert "Traceback" not in proc.stderr
    assert f"could not reach 127.0.0.1:{port}: Connection refused" in proc.stdout.splitlines()
    summary = json.loads((out / "scrape.json").read_text())["last_summary"]
    assert summary["unreachable"] == {f"127.0.0.1:{port}": "Connection refused"}
