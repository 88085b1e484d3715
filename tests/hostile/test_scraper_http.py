"""Hostile servers against the polite session (scrapers/http.py, scrapers/streaming.py): drips, Retry-After of a
year, compression bombs, endless and lying bodies, redirect games. Every case ends, in bounded time, as a
FetchError with its reason (or the file it should have written), never a hang, a MemoryError or a traceback;
plus unit tests of the plain rules (MinRate, Watch, read_capped)."""
from __future__ import annotations

import email.utils
import os
import time
import tracemalloc

import pytest

from scrapers.http import FetchError, PoliteSession
from scrapers.streaming import MinRate, Watch, read_capped
from tests.hostile.server import (HostileServer, drip, drip_headers, endless, gzip_bomb, paced, redirect, retry_after,
                                  robots, static)

DEADLINE = 1.5  # --timeout of these sessions: longer than the 1 s between dripped bytes, so no single read times out
RETRIES = 1


@pytest.fixture(scope="module")
def _srv():
    with HostileServer() as srv:
        yield srv


@pytest.fixture()
def srv(_srv):
    _srv.routes.clear()
    _srv.route("/robots.txt", robots())
    _srv.reset()
    return _srv


def session(**kw) -> PoliteSession:
    opts = dict(allowed_hosts=("127.0.0.1",), min_interval=0.0, jitter=0.0, backoff_base=0.05, max_retries=RETRIES,
                timeout=DEADLINE)
    opts.update(kw)
    return PoliteSession(**opts)


def fails(fn, reason: str):
    """Run `fn`, expecting FetchError(reason); (the error, elapsed seconds)."""
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fn()
    assert exc.value.reason == reason, exc.value
    assert "\n" not in str(exc.value)  # one line
    return exc.value, time.monotonic() - t0


# -- 1. the whole-request deadline ------------------------------------------------------------------------------
@pytest.mark.parametrize("behaviour", [
    pytest.param(drip(b'{"books": []}' * 4, interval=1.0), id="body-1-byte-per-s"),
    pytest.param(drip(b'{"books": []}' * 4, interval=1.0, content_length=False), id="body-without-length"),
    pytest.param(drip_headers(interval=1.0), id="status-line-and-headers"),
])
def test_a_dripped_answer_ends_as_a_timeout_within_the_deadline(srv, behaviour):
    url = srv.route("/api", behaviour)
    err, elapsed = fails(lambda: session().get_text(url), "timeout")
    assert "not complete within 1.5 s" in err.message and "--timeout" in err.message
    assert srv.count("/api") == RETRIES + 1  # retried like any timeout, then given up
    assert elapsed < 3 * DEADLINE * (RETRIES + 1)  # not the drip's 50 s


def test_a_dripped_robots_txt_is_unavailable_so_the_host_is_disallowed(srv):
    srv.route("/robots.txt", drip(b"User-agent: *\nAllow: /\n", interval=1.0, ctype="text/plain"))
    url = srv.route("/page", static(200, "hello"))
    err, elapsed = fails(lambda: session().get_text(url), "robots_disallowed")
    assert srv.count("/page") == 0 and elapsed < 3 * DEADLINE * (RETRIES + 1)


@pytest.mark.slow
def test_a_dripped_download_is_cut_by_the_minimum_rate_then_resumed_then_given_up(srv, tmp_path):
    body = bytes(range(256)) * 400
    url = srv.route("/a.mp3", drip(body, interval=1.0, ctype="audio/mpeg", prefix=3000))
    dest = tmp_path / "a.mp3"
    err, elapsed = fails(lambda: session(min_rate=1024).download(url, str(dest)), "timeout")
    assert "stalled" in err.message and "--min-rate" in err.message
    ranges = [r["range"] for r in srv.requests if r["path"] == "/a.mp3"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) >= 3000  # resumed
    assert not dest.exists() and (tmp_path / "a.mp3.part").stat().st_size >= 3000  # kept for the next run
    assert elapsed < 4 * DEADLINE * (RETRIES + 1)


@pytest.mark.parametrize("min_rate", [1024, 0])
def test_a_slow_but_steady_download_is_not_cut_by_the_deadline(srv, tmp_path, min_rate):
    body = os.urandom(48 * 1024)
    url = srv.route("/steady.mp3", paced(body, 8192, 0.3))  # ~27 KB/s for ~1.8 s: longer than the deadline
    t0 = time.monotonic()
    d = session(min_rate=min_rate).download(url, str(tmp_path / "s.mp3"))
    assert time.monotonic() - t0 > DEADLINE  # it did take longer than --timeout, and finished
    assert d.bytes == len(body) and (tmp_path / "s.mp3").read_bytes() == body


# -- 2. Retry-After beyond the cap ------------------------------------------------------------------------------
YEAR = 365 * 86400


@pytest.mark.parametrize("value, status", [
    pytest.param(str(YEAR), 429, id="seconds-429"),
    pytest.param(email.utils.formatdate(time.time() + YEAR, usegmt=True), 503, id="http-date-503"),
])
def test_a_retry_after_beyond_the_cap_fails_at_once(srv, tmp_path, value, status):
    url = srv.route("/x", retry_after(value, status))
    err, elapsed = fails(lambda: session().get_text(url), "rate_limited")
    assert f"HTTP {status}" in err.message and "more than --max-retry-after 120" in err.message
    assert str(YEAR)[:4] in err.message  # how long the server asked for
    assert elapsed < 2 and srv.count("/x") == 1  # no sleep, no retry
    err, elapsed = fails(lambda: session(max_retry_after=5).download(url, str(tmp_path / "x.mp3")), "rate_limited")
    assert "more than --max-retry-after 5" in err.message and elapsed < 2
    assert not list(tmp_path.iterdir())


def test_a_retry_after_within_the_cap_is_still_honoured(srv):
    calls = []

    def once_then_ok(h, q):
        calls.append(1)
        if len(calls) == 1:
            return retry_after("1")(h, q)
        return static(200, "ok", "text/plain")(h, q)

    url = srv.route("/soon", once_then_ok)
    t0 = time.monotonic()
    assert session(max_retry_after=2).get_text(url) == "ok"
    assert time.monotonic() - t0 >= 0.95


# -- 3. size caps counted after decompression -------------------------------------------------------------------
def test_a_gzip_bomb_is_refused_after_decompression_in_bounded_memory(srv):
    url = srv.route("/bomb.json", gzip_bomb(200 * 2 ** 20))  # ~200 KB on the wire, 200 MB inflated
    tracemalloc.start()
    try:
        err, elapsed = fails(lambda: session(max_body_bytes=2 ** 20).get_text(url), "too_large")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "larger than 1048576 bytes (decompressed)" in err.message
    assert peak < 16 * 2 ** 20 and elapsed < 5


def test_the_default_page_cap_stops_an_endless_answer(srv):
    url = srv.route("/endless", endless(ctype="application/json"))
    s = session()
    assert s.max_body_bytes == 50 * 2 ** 20
    err, _ = fails(lambda: s.get_text(url), "too_large")
    assert "larger than 52428800 bytes" in err.message


def test_a_huge_content_length_is_refused_before_reading(srv):
    url = srv.route("/huge", endless(content_length=10 * 2 ** 30, max_bytes=2 ** 20))
    err, elapsed = fails(lambda: session(max_body_bytes=2 ** 20).get_text(url), "too_large")
    assert "10737418240 bytes" in err.message and elapsed < 2


@pytest.mark.parametrize("behaviour", [
    pytest.param(endless(), id="no-content-length"),
    pytest.param(gzip_bomb(64 * 2 ** 20, ctype="audio/mpeg"), id="gzip-small-content-length"),
])
def test_the_file_cap_counts_bytes_written_whatever_content_length_says(srv, tmp_path, behaviour):
    url = srv.route("/big.mp3", behaviour)
    dest = tmp_path / "big.mp3"
    err, elapsed = fails(lambda: session(max_bytes=2 ** 20).download(url, str(dest)), "too_large")
    assert "exceeds 1048576 bytes" in err.message and elapsed < 5
    assert not dest.exists() and (tmp_path / "big.mp3.part").stat().st_size <= 2 ** 20 + 64 * 1024


def test_a_body_that_does_not_decompress_is_a_one_line_error(srv):
    url = srv.route("/bad-gzip", static(200, b"this is not gzip" * 10, "application/json",
                                         {"Content-Encoding": "gzip"}))
    err, _ = fails(lambda: session().get_text(url), "bad_encoding")
    assert "does not decompress" in err.message


# -- redirects --------------------------------------------------------------------------------------------------
def test_redirect_loops_end_and_redirects_never_leave_the_allow_list(srv):
    url = srv.route("/loop", redirect("/loop"))
    err, elapsed = fails(lambda: session().get_text(url), "too_many_redirects")
    assert srv.count("/loop") == 11 and elapsed < 5
    port = srv.base.rsplit(":", 1)[1]
    srv.route("/target", static(200, "secret"))
    for location in (f"http://localhost:{port}/target", "file:///etc/passwd", "http://evil.example/x"):
        url = srv.route("/out", redirect(location))
        err, _ = fails(lambda: session().get_text(url), "host_not_allowed" if "http" in location[:4] else "bad_scheme")
    assert srv.count("/target") == 0  # 'localhost' is the same server, but not the allow-listed name


# -- the plain rules --------------------------------------------------------------------------------------------
def test_min_rate_rule_judges_whole_windows():
    rule = MinRate(bytes_per_s=100, window_s=2.0, start=0.0)
    assert not rule.too_slow(0, 1.9)  # the window is not over
    assert not rule.too_slow(250, 2.0)  # 250 >= 200: a new window starts at 2.0 with 250 seen
    assert not rule.too_slow(300, 3.5)
    assert rule.too_slow(250 + 199, 4.0)  # 199 < 200 in [2, 4]
    assert "fewer than 200 bytes arrived in 2 s" in rule.describe()


def test_watch_deadline_then_rate_with_a_fake_clock():
    now = [0.0]
    w = Watch(5.0, "the answer", clock=lambda: now[0])
    assert w.broken(4.9) is None and "not complete within 5 s" in w.broken(5.0)
    w.body_started(MinRate(10, 1.0, 0.0))  # headers in: the deadline gives way to the rate
    w.total = 50
    assert w.broken(100.0) is None  # 50 bytes in the first window: fine
    assert "stalled" in w.broken(101.5)  # nothing more in the next one
    w = Watch(5.0, "the download", clock=lambda: now[0])
    w.body_started(None)  # --min-rate 0: after the headers nothing bounds the body but the caps
    assert w.broken(10 ** 6) is None


def test_read_capped_stops_at_the_cap_and_reports_a_fired_watch():
    chunks = iter([b"a" * 600, b"b" * 600, b"never read"])
    with pytest.raises(FetchError, match="too_large"):
        read_capped(lambda n: next(chunks), 1000, "the answer")
    parts = iter([b"ab", b"cd", b""])
    assert read_capped(lambda n: next(parts), 10, "x") == b"abcd"
    w = Watch(None)
    w.fired = "the answer was not complete within 1 s"
    with pytest.raises(FetchError, match="timeout"):  # a cut connection ends a body early: never a short answer
        read_capped(lambda n: b"", 10, "x", w)
