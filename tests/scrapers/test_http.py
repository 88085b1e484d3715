"""The polite session against the local fake server: policy, retries, Range resume, rate limit."""
from __future__ import annotations

import hashlib
import time

import pytest

from scrapers.http import (FetchError, PoliteSession, USER_AGENT, backoff_delay, host_allowed,
                           parse_retry_after)


def session(server, **kw) -> PoliteSession:
    opts = dict(allowed_hosts=("librivox.org", "archive.org", "127.0.0.1"), min_interval=0.0, jitter=0.0,
                backoff_base=0.05, max_retries=3, timeout=5.0)
    opts.update(kw)
    return PoliteSession(**opts)


def test_allow_list_matches_hosts_and_subdomains_only():
    allowed = ("librivox.org", "archive.org")
    assert host_allowed("librivox.org", allowed) and host_allowed("ia800.us.archive.org", allowed)
    assert not host_allowed("evilarchive.org", allowed)
    assert not host_allowed("librivox.org.evil.example", allowed)


def test_retry_after_and_backoff():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=0) > 1e9
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert backoff_delay(0, 1.0, 60, retry_after=7) == 7
    assert 1.0 <= backoff_delay(0, 1.0, 60) <= 1.25 and 4.0 <= backoff_delay(2, 1.0, 60) <= 5.0
    assert backoff_delay(10, 1.0, 60) <= 75


def test_refuses_other_hosts_schemes_robots_and_off_list_redirects(server):
    s = session(server)
    with pytest.raises(FetchError, match="host_not_allowed"):
        s.get_text("http://example.com/")
    with pytest.raises(FetchError, match="bad_scheme"):
        s.get_text("file:///etc/passwd")
    with pytest.raises(FetchError, match="robots_disallowed"):
        s.get_text(server.base + "/private/secret.mp3")
    assert server.count("/private/") == 0 and server.count("/robots.txt") == 1
    with pytest.raises(FetchError, match="host_not_allowed"):
        s.get_text(server.base + "/redirect-out")


def test_identifying_user_agent_is_sent(server):
    session(server).get_text(server.base + "/search")
    assert all(r["ua"] == USER_AGENT for r in server.requests)
    assert "speaker-datasets" in USER_AGENT


def test_429_with_retry_after_is_honoured(server, tmp_path):
    s = session(server)
    t0 = time.monotonic()
    d = s.download(server.base + "/audio/flaky429-a2_64kb.mp3", str(tmp_path / "a.mp3"))
    assert time.monotonic() - t0 >= 0.95  # waited Retry-After: 1, not the 0.05 s backoff
    assert server.count("flaky429") == 2
    assert d.bytes == (server.audio_dir / "flaky429-a2_64kb.mp3").stat().st_size


def test_500_once_then_ok_and_persistent_500_gives_up(server, tmp_path):
    s = session(server)
    s.download(server.base + "/audio/flaky500-a3_64kb.mp3", str(tmp_path / "a.mp3"))
    assert server.count("flaky500") == 2
    with pytest.raises(FetchError, match="retries_exhausted"):
        s.get_text(server.base + "/always500")
    assert server.count("/always500") == 4  # 1 + max_retries


def test_dropped_connection_resumes_with_range(server, tmp_path):
    s = session(server)
    dest = tmp_path / "d.mp3"
    d = s.download(server.base + "/audio/drop-a4_64kb.mp3", str(dest))
    src = (server.audio_dir / "drop-a4_64kb.mp3").read_bytes()
    assert dest.read_bytes() == src and d.sha256 == hashlib.sha256(src).hexdigest()
    ranges = [r["range"] for r in server.requests if "drop-a4" in r["path"]]
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    assert 0 < int(ranges[1][6:-1]) <= len(src) // 2  # resumed from what had arrived, not from zero
    assert not (tmp_path / "d.mp3.part").exists()


def test_partial_file_is_resumed_and_complete_part_is_accepted(server, tmp_path):
    s = session(server)
    src = (server.audio_dir / "a1_64kb.mp3").read_bytes()
    dest = tmp_path / "a1.mp3"
    (tmp_path / "a1.mp3.part").write_bytes(src[:1000])
    d = s.download(server.base + "/audio/a1_64kb.mp3", str(dest))
    assert dest.read_bytes() == src and d.resumed_from == 1000
    assert server.requests[-1]["range"] == "bytes=1000-"
    (tmp_path / "b.mp3.part").write_bytes(src)  # complete but never renamed: 416 confirms it
    s.download(server.base + "/audio/a1_64kb.mp3", str(tmp_path / "b.mp3"))
    assert (tmp_path / "b.mp3").read_bytes() == src


def test_size_cap_and_on_total_refusal_leave_no_file(server, tmp_path):
    s = session(server, max_bytes=1000)
    with pytest.raises(FetchError, match="too_large"):
        s.download(server.base + "/audio/a1_64kb.mp3", str(tmp_path / "x.mp3"))
    assert not (tmp_path / "x.mp3").exists()

    def refuse(total):
        raise FetchError("duration_mismatch", str(total))

    with pytest.raises(FetchError, match="duration_mismatch"):
        session(server).download(server.base + "/audio/a1_64kb.mp3", str(tmp_path / "y.mp3"), on_total=refuse)
    assert not (tmp_path / "y.mp3").exists()


def test_per_host_rate_limit_spaces_requests(server):
    s = session(server, min_interval=0.2)
    for _ in range(4):
        s.get_text(server.base + "/search")
    times = [r["t"] for r in server.requests if r["path"] == "/search"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 3 and min(gaps) >= 0.18


def test_download_reports_every_byte_to_on_bytes(server, tmp_path):
    heard = []
    d = session(server).download(server.base + "/audio/a1_64kb.mp3", str(tmp_path / "p.mp3"), on_bytes=heard.append)
    assert d.bytes > 0 and sum(heard) == d.bytes == (tmp_path / "p.mp3").stat().st_size


def test_robots_crawl_delay_widens_the_spacing(server):
    import urllib.robotparser
    s = session(server, min_interval=0.0)
    rp = urllib.robotparser.RobotFileParser()
    rp.parse(["User-agent: *", "Crawl-delay: 1", "Disallow: /private/"])
    s._robots[server.base] = rp
    s.get_text(server.base + "/search")
    s.get_text(server.base + "/search")
    times = [r["t"] for r in server.requests if r["path"] == "/search"]
    assert times[1] - times[0] >= 0.95
