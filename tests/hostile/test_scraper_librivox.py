"""Hostile LibriVox answers through the whole scraper (`python -m scrapers.librivox` in process): every case ends in
bounded time with its exit status, a one-line reason in OUT/rejected.jsonl, and only what should be written."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from scrapers.librivox import __main__ as cli
from scrapers.librivox.localsite import make_mp3
from tests.hostile.server import drip, endless, gzip_bomb, nested_json, retry_after, serve_file, static
from tests.hostile.sites import LibriVoxSite, api_book

DEADLINE = 1.5
FAST = ["--min-interval", "0", "--backoff", "0.05", "--max-retries", "1", "--timeout", str(DEADLINE), "--no-progress"]


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory):
    """Three 3 s MP3s at 64 kb/s (24 KB each)."""
    d = tmp_path_factory.mktemp("lv_mp3")
    out = {}
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        make_mp3(d / f"t{i}.mp3", freq, 3)
        out[i] = (d / f"t{i}.mp3").read_bytes()
    return out


@pytest.fixture()
def site():
    with LibriVoxSite() as s:
        yield s


def scrape(site, out: Path, *flags: str):
    """(exit status, elapsed seconds) of the CLI; any exception (a traceback) fails the test."""
    t0 = time.monotonic()
    code = cli.main(["--out", str(out), "--base-url", site.base, *FAST, *flags])
    return code, time.monotonic() - t0


def jsonl(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def reasons(out: Path):
    return {(r["id"], r["stage"], r["reason"]) for r in jsonl(out / "rejected.jsonl")}


def one_line(out: Path):
    for r in jsonl(out / "rejected.jsonl"):
        assert "\n" not in r["message"] and len(r["message"]) < 600, r


# -- 1. deadline ------------------------------------------------------------------------------------------------
def test_a_dripped_api_answer_is_a_recorded_timeout(site, tmp_path):
    site.by_id["7"] = drip(json.dumps({"books": [api_book("7", [])]}).encode(), interval=1.0)
    code, elapsed = scrape(site, tmp_path / "o", "--book-id", "7")
    assert code == 1 and elapsed < 3 * DEADLINE * 2
    assert reasons(tmp_path / "o") == {("librivox-book-7", "api", "timeout")}
    one_line(tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.jsonl").read_text()


@pytest.mark.slow
def test_a_dripped_chapter_is_cut_resumed_then_recorded_and_the_next_one_downloads(site, tmp_path, mp3s):
    site.book("8", [(1, "501", "Ann", "d.mp3", 3), (2, "501", "Ann", "ok.mp3", 3)])
    site.audio("d.mp3", drip(mp3s[0], interval=1.0, ctype="audio/mpeg", prefix=4000))
    site.audio("ok.mp3", serve_file(mp3s[1]))
    out = tmp_path / "o"
    code, elapsed = scrape(site, out, "--book-id", "8")
    assert code == 0 and elapsed < 4 * DEADLINE * 2 + 5
    assert reasons(out) == {("librivox-8-001", "download", "timeout")}
    assert [r["id"] for r in jsonl(out / "manifest.jsonl")] == ["librivox-8-002"]
    assert (out / "audio/501/8-001.mp3.part").exists() and not (out / "audio/501/8-001.mp3").exists()  # resumable


# -- 2. Retry-After ---------------------------------------------------------------------------------------------
def test_a_year_long_retry_after_fails_the_chapter_and_the_run_moves_on(site, tmp_path, mp3s):
    site.book("8", [(1, "501", "Ann", "busy.mp3", 3), (2, "501", "Ann", "ok.mp3", 3)])
    site.audio("busy.mp3", retry_after(str(365 * 86400)))
    site.audio("ok.mp3", serve_file(mp3s[1]))
    out = tmp_path / "o"
    code, elapsed = scrape(site, out, "--book-id", "8", "--max-retry-after", "60")
    assert code == 0 and elapsed < 10
    rejected = jsonl(out / "rejected.jsonl")
    assert [(r["id"], r["reason"]) for r in rejected] == [("librivox-8-001", "rate_limited")]
    assert "asked to wait 31536000 s, more than --max-retry-after 60" in rejected[0]["message"]
    assert [r["id"] for r in jsonl(out / "manifest.jsonl")] == ["librivox-8-002"]
    assert site.count("/audio/busy.mp3") == 1  # asked once, no sleeping retries


# -- 3. size caps -----------------------------------------------------------------------------------------------
def test_a_compressed_api_bomb_is_refused_after_decompression(site, tmp_path):
    site.by_id["7"] = gzip_bomb(64 * 2 ** 20)
    code, elapsed = scrape(site, tmp_path / "o", "--book-id", "7", "--max-page-mb", "1")
    assert code == 1 and elapsed < 10
    rejected = jsonl(tmp_path / "o" / "rejected.jsonl")
    assert [(r["reason"], r["stage"]) for r in rejected] == [("too_large", "api")]
    assert "larger than 1048576 bytes (decompressed)" in rejected[0]["message"]


def test_an_endless_chapter_without_content_length_stops_at_max_file_mb(site, tmp_path, mp3s):
    site.book("8", [(1, "501", "Ann", "big.mp3", 3)])
    site.audio("big.mp3", endless(ctype="audio/mpeg"))
    out = tmp_path / "o"
    code, elapsed = scrape(site, out, "--book-id", "8", "--max-file-mb", "1")
    assert code == 0 and elapsed < 10  # a failed download is recorded; the run itself went through
    assert reasons(out) == {("librivox-8-001", "download", "too_large")}
    assert not [p for p in (out / "audio").rglob("*") if p.is_file()]  # no partial file kept either


# -- 4. malformed JSON ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    (nested_json(100_000), "nested too deeply"),
    (nested_json(200), "nested deeper than 64 levels"),
    (b'{"books": [{"id": "7", "totaltimesecs": ' + b"9" * 5000 + b"}]}", "not usable JSON"),
])
def test_malformed_api_json_is_a_one_line_failure(site, tmp_path, body, message):
    site.by_id["7"] = static(200, body, "application/json")
    code, _ = scrape(site, tmp_path / "o", "--book-id", "7")
    rejected = jsonl(tmp_path / "o" / "rejected.jsonl")
    assert code == 1 and [(r["reason"], r["stage"]) for r in rejected] == [("invalid_json", "api")]
    assert message in rejected[0]["message"]


def test_api_objects_of_the_wrong_shape_are_data_not_crashes(site, tmp_path):
    odd = dict(api_book("7", []), sections=5, genres="x", totaltimesecs="nan")
    odd2 = dict(api_book("9", []), sections=[{"id": "1", "section_number": "\u00b2", "readers": {"a": 1}}, "text"])
    site.api_page([odd, odd2, 3, "x"])
    for bid in ("7", "9"):
        site.book(bid, [])  # their book pages, without chapters
    code, _ = scrape(site, tmp_path / "o")
    assert code == 0  # nothing to take, nothing failed
    assert reasons(tmp_path / "o") == {("librivox-9-s1", "select", "bad_section_number")}  # '²' is no number


def test_a_book_page_with_absurd_numbers_is_parsed_not_a_traceback(site, tmp_path, mp3s):
    huge = "9" * 5000
    page = (f"<html><body><table class='chapter-download'><tr><td>{huge}</td><td>x</td><td></td><td>{huge}:00:00"
            f"</td></tr></table><a href='https://librivox.org/rss/{huge}'>RSS</a></body></html>")
    site.book("8", [(1, "501", "Ann", "ok.mp3", 3)], page=static(200, page))
    code, _ = scrape(site, tmp_path / "o", "--book-id", "8")
    assert code == 0 and reasons(tmp_path / "o") == {("librivox-8-001", "select", "no_audio")}


# -- 6. ids and path collisions ---------------------------------------------------------------------------------
def test_ids_that_are_not_plain_integers_are_rejected_and_duplicates_never_share_a_file(site, tmp_path, mp3s):
    """Before: books '9/9' and '9_9' both became audio/501/9_9-001.mp3, the second 'downloaded' with the first's
    bytes. Now file names come from plain integer ids only, and a second chapter on one path is an error."""
    for i, bid in enumerate(("9/9", "9_9", "\u0669", "012", "8")):
        site.book(bid, [(1, "501", "Ann", f"f{i}.mp3", 3)])
        site.audio(f"f{i}.mp3", serve_file(mp3s[i % 3]))
    site.book("10", [(1, "0501", "Ann", "f0.mp3", 3)])
    books = [api_book(b, [(1, "501", "Ann", None, 3)]) for b in ("9/9", "9_9", "\u0669", "012", "8", "8")]
    site.api_page(books + [api_book("10", [(1, "0501", "Ann", None, 3)])])  # book 8 listed twice (paging overlap)
    out = tmp_path / "o"
    code, _ = scrape(site, out)
    assert code == 0
    assert reasons(out) == {
        ("librivox-book-9_9", "select", "invalid_id"), ("librivox-book-x", "select", "invalid_id"),
        ("librivox-book-012", "select", "invalid_id"), ("librivox-8-001", "select", "path_collision"),
        ("librivox-10-001", "select", "non_numeric_reader_id")}
    assert len([r for r in jsonl(out / "rejected.jsonl") if r["reason"] == "invalid_id"]) == 3  # 9/9 and 9_9 both
    recs = jsonl(out / "manifest.jsonl")
    assert [(r["id"], r["path"]) for r in recs] == [("librivox-8-001", "audio/501/8-001.mp3")]
    assert (out / "audio/501/8-001.mp3").read_bytes() == mp3s[4 % 3]
    assert sorted(p.name for p in (out / "audio").rglob("*") if p.is_file()) == ["8-001.mp3"]
    one_line(out)
