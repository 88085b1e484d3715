"""Hostile YouTube answers through the whole scraper (`python -m scrapers.youtube` in process; yt-dlp does the
requests): redirects off the allow-list, file:// streams, drips, bombs, nested JSON, odd page data, a year-long
Retry-After, duplicate listings. Each ends in bounded time with its exit status, a one-line reason and only
what should be written; a refused URL is never requested."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from scrapers.http import FetchError
from scrapers.youtube import __main__ as cli
from scrapers.youtube import pages, scrape
from tests.hostile.server import drip, endless, gzip_bomb, redirect, retry_after, serve_file, static
from tests.hostile.sites import YouTubeSite, watch_html
from tests.scrapers.youtube.conftest import make_webm, script_json

DEADLINE = 1.5
FAST = ["--min-interval", "0", "--sleep", "0", "--max-sleep", "0", "--sleep-requests", "0", "--min-duration", "0",
        "--retries", "1", "--no-progress", "--timeout", str(DEADLINE)]
CH = "UC" + "hostile_channel_id_22c"[:22].ljust(22, "_")
GOOD = "goodVideo01"


@pytest.fixture(scope="module")
def webm(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("yt_hostile") / "t.webm"
    make_webm(path, 250.0, 4)
    return path.read_bytes()


@pytest.fixture()
def site(webm):
    with YouTubeSite() as s:
        s.media("good.webm", serve_file(webm, "audio/webm"))
        s.video(GOOD, CH, "/media/good.webm")
        yield s


def run(site, tmp_path: Path, ids, *flags: str):
    """(exit status, stderr lines, elapsed s) of the CLI on a --urls file of `ids`."""
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"https://www.youtube.com/watch?v={v}\n" for v in ids))
    t0 = time.monotonic()
    code = cli.main(["--out", str(tmp_path / "o"), "--base-url", site.base, *FAST, "--urls", str(urls), *flags])
    return code, time.monotonic() - t0


def jsonl(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def outcome(tmp_path: Path):
    """{video id: (stage, reason)} of rejected.jsonl, and the ids in the manifest."""
    out = tmp_path / "o"
    rejected = jsonl(out / "rejected.jsonl")
    for r in rejected:
        assert "\n" not in r["message"] and len(r["message"]) < 700, r
    return ({r["id"].split("-", 1)[1]: (r["stage"], r["reason"]) for r in rejected},
            [r["id"].split("-", 1)[1] for r in jsonl(out / "manifest.jsonl")])


def audio_files(tmp_path: Path):
    """The stems of the files under OUT/audio (GOOD's audio becomes goodVideo01.opus)."""
    return sorted(p.name.split(".")[0] + (".part" if p.name.endswith(".part") else "")
                  for p in (tmp_path / "o" / "audio").rglob("*") if p.is_file())


# -- 5. the allow-list on every yt-dlp request, redirects included ---------------------------------------------
@pytest.mark.parametrize("target", ["localhost", "evil.example", "file"])
def test_a_stream_redirected_off_the_allow_list_is_refused_per_video(site, tmp_path, target):
    port = site.base.rsplit(":", 1)[1]
    location = {"localhost": f"http://localhost:{port}/media/good.webm", "evil.example": "http://evil.example/a.webm",
                "file": "file:///etc/passwd"}[target]
    site.media("redir.webm", redirect(location))
    site.video("redirVideo1", CH, "/media/redir.webm")
    code, elapsed = run(site, tmp_path, ["redirVideo1", GOOD])
    rejected, kept = outcome(tmp_path)
    assert code == 0 and elapsed < 30
    assert rejected == {"redirVideo1": ("download", "host_not_allowed")} and kept == [GOOD]
    assert site.count("/media/redir.webm") >= 1 and site.count("/media/good.webm") == 1  # only GOOD's own request
    assert audio_files(tmp_path) == [GOOD]


@pytest.mark.parametrize("stream", ["file:///etc/passwd", "file://127.0.0.1/etc/passwd"])
def test_a_file_stream_url_is_refused_never_read(site, tmp_path, stream):
    site.video("fileVideo01", CH, stream)
    code, _ = run(site, tmp_path, ["fileVideo01", GOOD])
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {"fileVideo01": ("metadata", "host_not_allowed")} and kept == [GOOD]
    assert "is not http(s)" in jsonl(tmp_path / "o" / "rejected.jsonl")[0]["message"]
    assert audio_files(tmp_path) == [GOOD]


def test_yt_dlp_itself_refuses_what_the_allow_list_does_not_name():
    from scrapers.youtube.guard import Guard, GuardedYoutubeDL, Limits, Refused

    guard = Guard(Limits(("127.0.0.1",)))
    ydl = GuardedYoutubeDL({"quiet": True}, guard)
    for url in ("file:///etc/passwd", "http://localhost:1/x", "https://evil.example/", "data:text/plain,x"):
        with pytest.raises(Refused) as exc:
            ydl.urlopen(url)
        assert exc.value.reason == "host_not_allowed"
    assert [e.reason for e in guard.events] == ["host_not_allowed"] * 4


# -- 1. deadlines -----------------------------------------------------------------------------------------------
def test_a_dripped_watch_page_is_a_timeout_for_that_video(site, tmp_path):
    page = watch_html("dripVideo01", CH, site.base + "/media/good.webm").encode()
    site.video("dripVideo01", CH, "", page=drip(page, interval=1.0, ctype="text/html"))
    code, elapsed = run(site, tmp_path, ["dripVideo01", GOOD])
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {"dripVideo01": ("metadata", "timeout")} and kept == [GOOD]
    assert elapsed < 3 * DEADLINE * 2 + 10


@pytest.mark.slow
def test_a_dripped_stream_is_cut_by_the_minimum_rate(site, tmp_path, webm):
    site.media("drip.webm", drip(webm, interval=1.0, ctype="audio/webm", prefix=3000))
    site.video("dripStream1", CH, "/media/drip.webm")
    code, elapsed = run(site, tmp_path, ["dripStream1", GOOD])
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {"dripStream1": ("download", "timeout")} and kept == [GOOD]
    assert elapsed < 4 * DEADLINE * 2 + 15
    msg = [r for r in jsonl(tmp_path / "o" / "rejected.jsonl")][0]["message"]
    assert "stalled" in msg and "--min-rate" in msg


# -- 3. size caps -----------------------------------------------------------------------------------------------
def test_an_endless_stream_without_content_length_stops_at_max_file_mb(site, tmp_path):
    site.media("endless.webm", endless(ctype="audio/webm"))
    site.video("bigStream01", CH, "/media/endless.webm")
    code, elapsed = run(site, tmp_path, ["bigStream01", GOOD], "--max-file-mb", "1")
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {"bigStream01": ("download", "too_large")} and kept == [GOOD]
    assert audio_files(tmp_path) == [GOOD] and elapsed < 30  # no partial file left to grow on a rerun


def test_a_compressed_watch_page_bomb_is_refused_after_decompression(site, tmp_path):
    site.video("bombPage001", CH, "", page=gzip_bomb(64 * 2 ** 20, ctype="text/html"))
    code, _ = run(site, tmp_path, ["bombPage001", GOOD], "--max-page-mb", "1")
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {"bombPage001": ("metadata", "too_large")} and kept == [GOOD]


# -- 4. nested JSON and odd page data ---------------------------------------------------------------------------
NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("name, html, reason", [
    ("nestPlayer1", f"<script>var ytInitialPlayerResponse = {{\"a\": {NESTED}}};</script>", "invalid_page"),
    ("nestData001", "<script>var ytInitialPlayerResponse = {\"videoDetails\": {}};"
                    f"var ytInitialData = {{\"a\": {'[' * 300 + ']' * 300}}};</script>", "invalid_page"),
    ("oddShapes01", script_json("ytInitialPlayerResponse", {"videoDetails": ["x"], "streamingData": {"formats": {}}}),
     "malformed_page"),
])
def test_malformed_watch_page_json_is_a_one_line_rejection(site, tmp_path, name, html, reason):
    site.video(name, CH, "", page=static(200, html))
    code, _ = run(site, tmp_path, [name, GOOD])
    rejected, kept = outcome(tmp_path)
    assert code == 0 and rejected == {name: ("metadata", reason)} and kept == [GOOD]


def test_a_listing_page_with_nested_json_exits_1_with_one_line(site, tmp_path, capsys):
    site.route("/@nested/videos", static(200, f"<script>var ytInitialData = {{\"a\": {NESTED}}};</script>"))
    code = cli.main(["--out", str(tmp_path / "o"), "--base-url", site.base, *FAST, "--channel",
                     f"{site.base}/@nested", "--lister", "ytdlp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("python -m scrapers.youtube: error:") and "nested too deeply" in err[-1]
    assert not (tmp_path / "o").exists()


def test_ids_with_a_trailing_newline_never_become_names(tmp_path):
    assert pages.VIDEO_ID.match("abcdefghijk\n") is None and pages.VIDEO_ID.match("abcdefghijk")
    assert pages.CHANNEL_ID.match(CH + "\n") is None and pages.PLAYLIST_ID.match("PLabc\n") is None
    with pytest.raises(FetchError, match="unsafe_path"):
        scrape.audio_stem(str(tmp_path), pages.Video("abcdefghijk\n"))
    rel, _ = scrape.audio_stem(str(tmp_path), pages.Video("abcdefghijk", channel_id=CH + "\n"))
    assert rel == "audio/unknown-channel"
    listing = pages.parse_listing(script_json("ytInitialData", {"contents": [
        {"videoRenderer": {"videoId": "abcdefghijk\n"}}, {"videoRenderer": {"videoId": ["x"], "title": 5}},
        {"videoRenderer": {"videoId": "okVideo0001", "lengthSeconds": "\u00b2"}}]}), "u")
    assert [(v.id, v.duration_s) for v in listing.videos] == [("okVideo0001", None)]


# -- 6. one file per video --------------------------------------------------------------------------------------
def test_a_video_listed_twice_with_two_speakers_is_one_file_and_one_rejection(site, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# speaker: Ann\nhttps://www.youtube.com/watch?v={GOOD}\n"
                    f"# speaker: Bob\nhttps://www.youtube.com/watch?v={GOOD}\n")
    assert cli.main(["--out", str(tmp_path / "o"), "--base-url", site.base, *FAST, "--urls", str(urls)]) == 0
    rejected, kept = outcome(tmp_path)
    assert rejected == {GOOD: ("select", "path_collision")} and kept == [GOOD]
    assert jsonl(tmp_path / "o" / "manifest.jsonl")[0]["speaker_name"] == "Ann"


# -- 2. Retry-After beyond the cap: the YouTube scraper stops as on a 429 ---------------------------------------
def test_a_year_long_retry_after_stops_the_run_with_status_3(site, tmp_path, capsys):
    site.route("/robots.txt", retry_after(str(365 * 86400)))
    code, elapsed = run(site, tmp_path, [GOOD])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and elapsed < 5
    assert err[-1].startswith("python -m scrapers.youtube: stopped:") and "more than --max-retry-after 120" in err[-1]
    assert site.count("/watch") == 0 and site.count("/robots.txt") == 1


# -- 8. the browser lister: a page that never finishes loading --------------------------------------------------
@pytest.mark.slow
def test_a_dripped_listing_page_in_the_browser_is_a_one_line_timeout(site, tmp_path, capsys):
    site.route("/@drip/videos", drip(b"<html><body>" + b" " * 200 + b"</body></html>", interval=1.0,
                                     ctype="text/html"))
    t0 = time.monotonic()
    code = cli.main(["--out", str(tmp_path / "o"), "--base-url", site.base, *FAST, "--timeout", "3",
                     "--channel", f"{site.base}/@drip", "--lister", "browser"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "did not load within 3 s" in err[-1] and err[-1].startswith("python -m scrapers.youtube: error:")
    assert time.monotonic() - t0 < 60 and not (tmp_path / "o").exists()
