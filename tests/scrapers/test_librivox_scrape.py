"""End to end against the local LibriVox: selection, caps, downloads, resume after SIGKILL, resumable API paging,
duration checks, dry run, bad inputs. (The manifest fed to the dataset builder: test_librivox_demo.py.)"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from scrapers.http import FetchError
from scrapers.jsonl import JsonlAppender
from scrapers.librivox import __main__ as cli
from scrapers.librivox import api, pages, scrape, selection
from scrapers.librivox.localsite import BOOKS, all_results
from tests.scrapers.conftest import assert_manifest_round_trip, real_api_files

REPO = Path(__file__).resolve().parents[2]
FAST = ["--min-interval", "0", "--backoff", "0.05", "--limit", "2", "--no-progress"]
KEPT = ["librivox-101-001", "librivox-101-002", "librivox-101-003", "librivox-102-001", "librivox-102-003",
        "librivox-104-001", "librivox-104-002", "librivox-105-001"]


def run_cli(server, out: Path, *flags: str):
    lines = []
    cfg = cli.parse_config(["--out", str(out), "--base-url", server.base, *FAST, *flags])
    return scrape.run(cfg, echo=lines.append), lines


def manifest(out: Path):
    return [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]


def audio_requests(server) -> int:
    return sum(1 for r in server.requests if r["path"].startswith("/audio/"))


def test_full_run_writes_manifest_audio_and_rejections(server, tmp_path):
    out = tmp_path / "out"
    summary, lines = run_cli(server, out)
    recs = manifest(out)
    assert [r["id"] for r in recs] == KEPT
    r = recs[0]
    assert r["path"] == "audio/501/101-001.mp3" and r["speaker"] == "librivox:501"
    assert r["speaker_name"] == "Alice Reader" and r["recording"] == r["id"] and r["group"] == "librivox-book-101"
    assert (r["source"], r["license"], r["language"]) == ("librivox", "public-domain", "English")
    assert r["book_id"] == "101" and r["section_id"] == "101001" and r["reader_name"] == "Alice Reader"
    assert r["url"].endswith("/audio/a1_64kb.mp3") and r["duration_s"] == 3.0
    for rec in recs:
        data = (out / rec["path"]).read_bytes()
        assert len(data) == rec["bytes"] and hashlib.sha256(data).hexdigest() == rec["sha256"]
    assert not list(out.rglob("*.part"))
    contract = assert_manifest_round_trip(out)  # what the builder reads is what the scraper wrote
    assert [(c.id, c.speaker, c.speaker_name, c.group, c.duration_s) for c in contract[:1]] == [
        ("librivox-101-001", "librivox:501", "Alice Reader", "librivox-book-101", 3.0)]
    assert contract[0].extra == {"book_id": "101", "section_id": "101001", "section_number": 1, "reader_id": "501",
                                 "reader_name": "Alice Reader"}
    rejected = {(x["id"], x["reason"]) for x in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert rejected == {("librivox-102-002", "multiple_readers"), ("librivox-102-004", "no_audio"),
                        ("librivox-102-005", "non_numeric_reader_id"), ("librivox-book-103", "no_chapter_table")}
    assert summary["readers_found"] == 5 and summary["readers_selected"] == 4 and summary["books"] == 5
    assert summary["solo_books"] == 3 and summary["chapters_kept"] == 8 and summary["failures"] == []
    assert summary["rejected"] == {"multiple_readers": 1, "no_audio": 1, "no_chapter_table": 1,
                                   "non_numeric_reader_id": 1}
    assert summary["hours_downloaded"] == pytest.approx(33 / 3600, abs=1e-4)
    assert "chapters kept: 8" in lines[-1] and "rejected: multiple_readers=1" in lines[-1]
    stored = json.loads((out / "scrape.json").read_text())
    assert stored["identity"]["base_url"] == server.base and stored["last_summary"]["chapters_kept"] == 8

    server.reset()  # a rerun downloads nothing and duplicates nothing
    before = (out / "manifest.jsonl").read_bytes(), (out / "rejected.jsonl").read_bytes()
    summary2, _ = run_cli(server, out)
    assert audio_requests(server) == 0 and summary2["skipped_already_done"] == 8
    assert ((out / "manifest.jsonl").read_bytes(), (out / "rejected.jsonl").read_bytes()) == before


@pytest.mark.slow
def test_sigkill_mid_download_then_rerun_equals_uninterrupted_run(server, tmp_path):
    ref = tmp_path / "ref"
    run_cli(server, ref)
    server.reset()
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "scrapers.librivox", "--out", str(out), "--base-url", server.base, *FAST]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "audio" / "504" / "105-001.mp3.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0):  # the slow file is streaming
        assert proc.poll() is None and time.monotonic() < deadline, "the scraper ended before the slow download"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert not (out / "audio" / "504" / "105-001.mp3").exists()
    assert "librivox-105-001" not in (out / "manifest.jsonl").read_text()
    partial = part.stat().st_size
    server.reset()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    assert (out / "rejected.jsonl").read_bytes() == (ref / "rejected.jsonl").read_bytes()
    for rec in manifest(ref):
        assert (out / rec["path"]).read_bytes() == (ref / rec["path"]).read_bytes()
    assert not list(out.rglob("*.part"))
    audio = [r for r in server.requests if r["path"].startswith("/audio/")]
    assert [r["path"] for r in audio] == ["/audio/slow-d1_64kb.mp3"]  # finished files were not fetched again
    assert audio[0]["range"] == f"bytes={partial}-"  # the partial file was resumed


def test_dry_run_lists_without_downloading(server, tmp_path):
    out = tmp_path / "dry"
    summary, lines = run_cli(server, out, "--dry-run")
    assert audio_requests(server) == 0 and not out.exists()
    listed = [l.split("\t") for l in lines[:-1]]
    assert [l[0] for l in listed] == KEPT
    assert listed[0][1] == "librivox:501" and listed[0][2] == "3 s" and listed[0][3] == "~0.02 MB"
    assert summary["hours_planned"] == pytest.approx(33 / 3600, abs=1e-4)


@pytest.mark.parametrize("flags, kept, reason", [
    (["--max-readers", "1"], ["librivox-101-001", "librivox-101-002", "librivox-101-003",
                              "librivox-104-001", "librivox-104-002"], "max_readers"),
    (["--max-books-per-reader", "1"], [k for k in KEPT if not k.startswith("librivox-104")], "max_books_per_reader"),
    (["--max-seconds-per-reader", "6"], ["librivox-101-001", "librivox-101-002", "librivox-102-001",
                                         "librivox-102-003"], "max_seconds_per_reader"),
    (["--min-seconds-per-reader", "10"], [k for k in KEPT if k.startswith(("librivox-101", "librivox-104",
                                                                            "librivox-105"))], "min_seconds_per_reader"),
    (["--solo-books-only"], [k for k in KEPT if not k.startswith("librivox-102")], "not_solo_book"),
    (["--genre", "poetry"], [k for k in KEPT if not k.startswith("librivox-102")], None),
])
def test_caps_and_filters(server, tmp_path, flags, kept, reason):
    summary, lines = run_cli(server, tmp_path / "o", "--dry-run", *flags)
    assert [l.split("\t")[0] for l in lines[:-1]] == kept
    if reason:
        assert summary["rejected"].get(reason, 0) >= 1


def test_exclude_readers_file(server, tmp_path):
    f = tmp_path / "exclude.txt"
    f.write_text("# not these\nlibrivox:501\n504\n")
    summary, lines = run_cli(server, tmp_path / "o", "--dry-run", "--exclude-readers", str(f))
    assert [l.split("\t")[0] for l in lines[:-1]] == ["librivox-102-001", "librivox-102-003"]
    assert summary["rejected"]["excluded_reader"] >= 1


def test_book_ids_and_search_discovery_without_a_browser(server, tmp_path):
    summary, lines = run_cli(server, tmp_path / "o", "--dry-run", "--book-id", "104", "--book-id", "9002")
    assert [l.split("\t")[0] for l in lines[:-1]] == ["librivox-104-001", "librivox-104-002"]
    assert [f["reason"] for f in summary["failures"]] == ["html_error_page"]

    cfg = cli.parse_config(["--out", str(tmp_path / "s"), "--base-url", server.base, *FAST, "--search", "--dry-run"])
    found = pages.parse_search_results(all_results({"project_type": "solo"}), server.base)
    out = []
    summary = scrape.run(cfg, search_fn=lambda: found, echo=out.append)
    assert [l.split("\t")[0] for l in out[:-1]] == [k for k in KEPT if not k.startswith("librivox-102")]
    assert summary["rejected"] == {"no_chapter_table": 1}


def test_api_database_error_page_is_a_failure_not_a_crash(server, tmp_path):
    cfg = scrape.Config(out=str(tmp_path / "o"), base_url=server.base, genre="Database", min_interval=0,
                        dry_run=True, progress=False)
    summary = scrape.run(cfg, echo=lambda s: None)
    assert summary["chapters_kept"] == 0 and summary["failures"][0]["reason"] == "html_error_page"
    assert summary["next_offset"] == 0


def test_duration_mismatch_is_rejected_and_leaves_no_file(server, tmp_path):
    ch = selection.Chapter(id="librivox-1-001", book_id="1", book_title="t", book_url="", section_number=1,
                        section_id="1", section_title="", reader_id="9", reader_name="n",
                        url=server.base + "/audio/a1_64kb.mp3", kbps=64, playtime_s=60.0, language="English")
    cfg = scrape.Config(out=str(tmp_path), base_url=server.base, min_interval=0, progress=False)
    with pytest.raises(FetchError, match="duration_mismatch"):
        scrape.download_chapter(ch, str(tmp_path), scrape.make_session(cfg), 0.15)
    assert not list(tmp_path.rglob("*.mp3*"))
    assert selection.duration_ok(24000, 3.0, 64, 0.15) and not selection.duration_ok(24000, 30.0, 64, 0.15)


def test_a_chapter_that_cannot_become_a_manifest_line_is_rejected_before_download(server, tmp_path, monkeypatch):
    real = scrape.chapters_of_book

    def garbled(book, page, quality=64):  # web data the manifest contract refuses: a control character
        kept, rejects, solo = real(book, page, quality)
        return [dataclasses.replace(c, language="Eng\x07lish") if c.section_number == 1 else c for c in kept], \
            rejects, solo

    monkeypatch.setattr(scrape, "chapters_of_book", garbled)
    out = tmp_path / "o"
    summary, _ = run_cli(server, out, "--book-id", "104")
    assert [r["id"] for r in manifest(out)] == ["librivox-104-002"]
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [("librivox-104-001", "manifest", "invalid_field")]
    assert "language" in rejected[0]["message"] and summary["rejected"] == {"invalid_field": 1}
    assert [r["path"] for r in server.requests if r["path"].startswith("/audio/")] == ["/audio/a5_64kb.mp3"]
    assert scrape.unrecordable(chapter_at(server, "a1", -3.0)).reason == "invalid_field"  # a negative API playtime
    assert scrape.unrecordable(chapter_at(server, "a1", 3.0)) is None


def test_unsafe_ids_never_become_paths():
    ch = selection.Chapter(id="x", book_id="../../etc", book_title="", book_url="", section_number=1, section_id="",
                        section_title="", reader_id="../..", reader_name="", url="", kbps=64, playtime_s=1,
                        language="")
    rel = selection.audio_relpath(ch)
    assert ".." not in rel.split("/") and rel.startswith("audio/")


@pytest.mark.parametrize("flags, message", [
    (["--language", "Klingon"], "unknown --language"),
    (["--genre", "Space Opera Musicals"], "unknown --genre"),
    (["--base-url", "ftp://librivox.org"], "--base-url must be an http(s) URL"),
    (["--base-url", "librivox.org"], "--base-url must be an http(s) URL"),
    (["--exclude-readers", "/nonexistent/file"], "--exclude-readers"),
    (["--book-id", "12a"], "--book-id must be numeric"),
])
def test_bad_inputs_fail_with_one_line_before_any_request(server, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        cli.parse_config(["--out", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("python -m scrapers.librivox: error:")
    assert server.requests == [] and not (tmp_path / "o").exists()


def test_output_folder_of_another_config_is_refused(server, tmp_path):
    out = tmp_path / "o"
    run_cli(server, out, "--book-id", "104", "--language", "English")
    server.reset()
    proc = subprocess.run([sys.executable, "-m", "scrapers.librivox", "--out", str(out), "--base-url", server.base,
                           "--language", "German"], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "holds a scrape with another config" in last and "language" in last
    assert server.requests == []
    run_cli(server, out, "--book-id", "104", "--language", "english", "--max-readers", "3")  # caps may change


def test_torn_manifest_line_is_cut_on_reopen(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "a"}\n{"id": "b", "pa')
    with JsonlAppender(str(p)) as m:
        assert "a" in m and "b" not in m
        assert m.append({"id": "b"}) and not m.append({"id": "a"})
    assert p.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_chapters_of_book_reader_checks_and_listen_url_fallback():
    def sec(n, readers, listen=None):
        return api.Section(str(n), n, f"S{n}", 60.0, listen, None, tuple(api.Reader(r, "R" + r) for r in readers))

    book = api.Book("7", "T", "English", None, None, None, (), (
        sec(1, ["1"], "https://librivox.org/uploads/x/a_128kb.mp3"), sec(2, ["1"], "http://homepage.mac.com/a.mp3"),
        sec(3, []), sec(4, ["2"], "https://librivox.org/uploads/x/b_128kb.mp3")))
    kept, rejects, solo = selection.chapters_of_book(book, None, quality=128)
    assert [c.id for c in kept] == ["librivox-7-001", "librivox-7-004"] and not solo
    assert {(r.id, r.reason) for r in rejects} == {("librivox-7-002", "no_audio"), ("librivox-7-003", "no_reader")}
    row = pages.PageSection(1, "S1", "http://m/a_64kb.mp3", None, ("9",), ("Other",), 60.0)
    page = pages.BookPage("http://m/b/", "7", "T", None, None, "", (row,))
    kept, rejects, _ = selection.chapters_of_book(book, page, quality=64)
    assert kept == [] and ("librivox-7-001", "reader_mismatch") in {(r.id, r.reason) for r in rejects}
    assert ("librivox-7-004", "no_audio") in {(r.id, r.reason) for r in rejects}


def test_a_failed_download_completed_by_a_rerun_leaves_no_stale_rejection(server, tmp_path, monkeypatch):
    out = tmp_path / "o"
    real = scrape.download_chapter
    failing = {"id": None}

    def flaky(ch, *args, **kwargs):
        if failing["id"] is None:
            failing["id"] = ch.id
        if ch.id == failing["id"]:
            raise FetchError("http_503", "simulated outage")
        return real(ch, *args, **kwargs)

    monkeypatch.setattr(scrape, "download_chapter", flaky)
    first, _ = run_cli(server, out)
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert any(r["id"] == failing["id"] and r["stage"] == "download" for r in rejected)
    assert failing["id"] not in {r["id"] for r in manifest(out)}
    monkeypatch.setattr(scrape, "download_chapter", real)
    second, _ = run_cli(server, out)
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert failing["id"] not in {r["id"] for r in rejected if r["stage"] == "download"}
    assert failing["id"] in {r["id"] for r in manifest(out)}
    assert len(manifest(out)) == first["chapters_kept"] == second["chapters_kept"]


def api_offsets(server):
    return [urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query).get("offset", [None])[0]
            for r in server.requests if r["path"].startswith("/api/feed/audiobooks/") and "offset=" in r["path"]]


@pytest.mark.slow
def test_api_paging_resumes_from_the_recorded_pages(server, tmp_path):
    ref = tmp_path / "ref"
    run_cli(server, ref)  # 5 books, 2 per page: offsets 0, 2, 4 (a short page ends it)
    server.reset()
    out = tmp_path / "o"
    first, lines = run_cli(server, out, "--max-pages", "1")  # interrupted after one page
    assert api_offsets(server) == ["0"] and first["next_offset"] == 2
    assert first["api_paging"] == {"pages_recorded": 1, "pages_fetched": 1, "finished": False}
    assert "stopped before offset 2" in lines[-1]
    assert {r["book_id"] for r in manifest(out)} == {"101", "102"}
    server.reset()
    second, lines = run_cli(server, out)  # the same command, without the cap: continues at offset 2
    assert api_offsets(server) == ["2", "4"]  # page 0 is replayed from OUT/api_pages.jsonl, not requested
    assert second["api_paging"] == {"pages_recorded": 3, "pages_fetched": 2, "finished": True}
    assert second["next_offset"] is None and "API paging finished (3 pages recorded)" in lines[-1]
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()  # union, no duplicate
    assert (out / "rejected.jsonl").read_bytes() == (ref / "rejected.jsonl").read_bytes()
    assert json.loads((out / "scrape.json").read_text())["last_summary"]["api_paging"]["finished"] is True
    server.reset()
    third, _ = run_cli(server, out)  # discovery is recorded as finished: no API request at all
    assert api_offsets(server) == [] and audio_requests(server) == 0 and third["chapters_kept"] == 8


def test_api_failure_mid_paging_is_resumed_at_the_failed_offset(server, tmp_path, monkeypatch):
    out = tmp_path / "o"
    real = api.fetch_page

    def failing_at_2(get_text, base_url, limit, offset, **filters):
        if offset == 2:
            raise api.ApiError("html_error_page", "Database Error")
        return real(get_text, base_url, limit, offset, **filters)

    monkeypatch.setattr(api, "fetch_page", failing_at_2)
    first, _ = run_cli(server, out, "--dry-run")  # a dry run reads the page log but never writes it
    assert first["next_offset"] == 2 and not (out / "api_pages.jsonl").exists()
    first, _ = run_cli(server, out)
    assert first["next_offset"] == 2 and [f["reason"] for f in first["failures"]] == ["html_error_page"]
    monkeypatch.setattr(api, "fetch_page", real)
    server.reset()
    second, _ = run_cli(server, out)
    assert api_offsets(server) == ["2", "4"] and second["failures"] == [] and second["next_offset"] is None
    assert [r["id"] for r in manifest(out)] == KEPT  # each chapter once, in discovery order


def test_paging_that_ends_on_a_full_page_stops_at_the_404_not_found(server, tmp_path):
    summary, _ = run_cli(server, tmp_path / "o", "--limit", "5", "--dry-run")
    assert api_offsets(server) == ["0", "5"]  # offset 5 answers {"error": ...} with HTTP 404, as LibriVox does
    assert summary["failures"] == [] and summary["api_paging"]["finished"] and summary["next_offset"] is None


def chapter_at(server, name: str, playtime: float) -> selection.Chapter:
    return selection.Chapter(id="librivox-1-001", book_id="1", book_title="t", book_url="", section_number=1,
                          section_id="1", section_title="", reader_id="9", reader_name="n",
                          url=f"{server.base}/audio/{name}_64kb.mp3", kbps=64, playtime_s=playtime,
                          language="English")


def test_header_duration_check_catches_what_the_size_check_cannot(server, tmp_path):
    session = scrape.make_session(scrape.Config(out=str(tmp_path), base_url=server.base, min_interval=0,
                                                progress=False))
    half = server.audio_dir / "halfrate-x1_64kb.mp3"  # 6 s at 32 kb/s: the size of 3 s at 64 kb/s
    assert selection.duration_ok(half.stat().st_size, 3.0, 64, 0.15)
    # 6.0 s as FFmpeg 8.1 (the av wheel) reads the headers; 5.1 counted the encoder's padding too (6.1 s)
    with pytest.raises(FetchError, match="duration_mismatch: the file's headers say 6.0 s"):
        scrape.download_chapter(chapter_at(server, "halfrate-x1", 3.0), str(tmp_path), session, 0.15)
    with pytest.raises(FetchError, match="not_audio"):  # an HTML page of the right size
        scrape.download_chapter(chapter_at(server, "notaudio-x2", 3.0), str(tmp_path), session, 0.15)
    assert not list(tmp_path.rglob("*.mp3*"))
    record = scrape.download_chapter(chapter_at(server, "a1", 3.0), str(tmp_path), session, 0.15)
    assert record["duration_s"] == 3.0 and (tmp_path / record["path"]).exists()
    assert scrape.check_header_duration(str(server.audio_dir / "slow-d1_64kb.mp3"), 12.0, 0.15) == \
        pytest.approx(12.0, abs=0.2)


def test_a_file_that_fails_the_duration_check_is_a_rejection_not_retried(server, tmp_path, monkeypatch):
    out = tmp_path / "o"
    plan = scrape.Plan(chapters=[chapter_at(server, "halfrate-x1", 3.0),
                                 dataclasses.replace(chapter_at(server, "a1", 3.0), id="librivox-1-002",
                                                     section_number=2)])
    monkeypatch.setattr(scrape, "make_plan", lambda *a, **k: plan)
    summary, _ = run_cli(server, out)
    assert [r["id"] for r in manifest(out)] == ["librivox-1-002"]
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [("librivox-1-001", "verify", "duration_mismatch")]
    assert summary["rejected"] == {"duration_mismatch": 1} and summary["failures"] == []
    assert not list(out.rglob("*.part")) and not (out / "audio" / "9" / "1-001.mp3").exists()
    server.reset()
    run_cli(server, out)
    assert audio_requests(server) == 0  # neither the done file nor the rejected one is fetched again
    assert (out / "rejected.jsonl").read_text().count("librivox-1-001") == 1


def test_every_language_and_genre_of_the_real_api_data_is_accepted(tmp_path):
    languages, genres = {"English"}, {b["genre"] for b in BOOKS.values()}
    for f in real_api_files() or []:  # without the shared folder: the generated catalogue's names
        try:
            books = api.parse_response(f.read_text(encoding="utf-8", errors="replace"))
        except api.ApiError:
            continue
        languages |= {b.language for b in books}
        genres |= {g for b in books for g in b.genres}
    if real_api_files():
        assert len(languages) == 16 and len(genres) == 91
    for lang in sorted(languages):
        assert cli.parse_config(["--out", str(tmp_path / "o"), "--language", lang.upper()]).language == lang
    for genre in sorted(genres):
        assert cli.parse_config(["--out", str(tmp_path / "o"), "--genre", genre]).genre == genre
    for genre in ("Gothic Fiction", "Sonnets", "True Crime", "Technology & Engineering"):  # the current catalogue's
        assert cli.parse_config(["--out", str(tmp_path / "o"), "--genre", genre.lower()]).genre == genre
    assert "Technology" not in scrape.GENRES  # a guess that is in neither source


def test_the_early_audit_stops_a_reader_whose_first_chapters_fail(server, tmp_path, pitch_model):
    """Reader 501's chapters are tones of different pitches: to the stand-in audit model, three different voices
    under one reader. After its first three downloads fail (speaker_mismatch), its other two are not fetched."""
    out = tmp_path / "out"
    summary, _ = run_cli(server, out, "--audit-model", str(pitch_model))
    audit = {d["id"]: d for d in map(json.loads, (out / "audit.jsonl").read_text().splitlines())}
    first = ["librivox-101-001", "librivox-101-002", "librivox-101-003"]
    assert sorted(audit) == sorted(first + ["librivox-102-001", "librivox-102-003", "librivox-105-001"])
    # (tones are narrowband too: a flag, which alone never stops a reader)
    assert all(audit[i]["verdict"] == "reject" and audit[i]["reasons"] == ["speaker_mismatch", "narrowband"]
               for i in first)
    assert all(audit[i]["reasons"] == ["narrowband"] for i in audit if i not in first)  # one chapter each
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    stopped = sorted(r["id"] for r in rejected if r["reason"] == "speaker_failed_audit")
    assert stopped == ["librivox-104-001", "librivox-104-002"]
    assert all("3 of its first 3 downloads failed the acoustic audit" in r["message"]
               for r in rejected if r["reason"] == "speaker_failed_audit")
    assert summary["rejected"]["speaker_failed_audit"] == 2
    assert not any("/a5_" in r["path"] or "drop-a4" in r["path"] for r in server.requests)  # no bandwidth spent
    assert [r["id"] for r in manifest(out)] == first + ["librivox-102-001", "librivox-102-003", "librivox-105-001"]
    server.reset()  # a rerun remembers the verdicts: the reader stays stopped, nothing is fetched again
    run_cli(server, out, "--audit-model", str(pitch_model))
    assert audio_requests(server) == 0


def test_a_bad_audit_model_fails_before_any_request(server, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(server, tmp_path / "out", "--audit-model", str(tmp_path / "nowhere"))
    assert exc.value.code == 2 and "--audit-model" in capsys.readouterr().err and not server.requests


def test_progress_lines_count_chapters_and_bytes_off_a_terminal(server, tmp_path, caplog):
    import logging

    out = tmp_path / "out"
    cfg = cli.parse_config(["--out", str(out), "--base-url", server.base,
                            *[a for a in FAST if a != "--no-progress"]])
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        scrape.run(cfg, echo=lambda s: None)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.progress"]
    size = sum(r["bytes"] for r in manifest(out))
    assert [ln.split(" (")[0] for ln in lines] == [f"download: {k}/8 chapters" for k in range(1, 9)]
    assert f", {size / 1e6:.1f} MB, " in lines[-1] and lines[-1].endswith("ETA 0:00:00")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        scrape.run(cfg, echo=lambda s: None)  # a rerun: nothing left to download, nothing to show
    assert [r.getMessage() for r in caplog.records if r.name == "pipelines.progress"] == []
