"""The LibriVox selection policy (scrapers/librivox/selection.py) as plain functions: no site, no files."""
from __future__ import annotations

from typing import Optional, Sequence

import pytest

from scrapers.librivox import api, pages, selection
from scrapers.librivox.selection import Chapter, Selector


def chapter(reader: str, book: str, number: int = 1, seconds: Optional[float] = 60.0) -> Chapter:
    return Chapter(id=selection.chapter_id(book, number), book_id=book, book_title=f"Book {book}", book_url="",
                   section_number=number, section_id=f"{book}{number:03d}", section_title="", reader_id=reader,
                   reader_name=f"Reader {reader}", url=f"https://librivox.org/{book}-{number}_64kb.mp3", kbps=64,
                   playtime_s=seconds, language="English")


def section(number: Optional[int], readers: Sequence[str], playtime: Optional[float] = 60.0,
            listen_url: Optional[str] = None, section_id: Optional[str] = None) -> api.Section:
    return api.Section(section_id or f"s{number}", number, f"Chapter {number}", playtime, listen_url, None,
                       tuple(api.Reader(r, f"Reader {r}") for r in readers))


def book(*sections: api.Section, book_id: str = "7") -> api.Book:
    return api.Book(book_id, "Title", "English", f"https://librivox.org/book-{book_id}/", None, None, (), sections)


def row(number: int, readers: Sequence[str], mp3_64: Optional[str] = "http://m/a_64kb.mp3",
        duration: Optional[float] = 61.0) -> pages.PageSection:
    return pages.PageSection(number, f"Chapter {number}", mp3_64, None, tuple(readers),
                             tuple(f"Page {r}" for r in readers), duration)


def page(*rows: pages.PageSection) -> pages.BookPage:
    return pages.BookPage("http://m/book-7/", "7", "Title", None, None, "", rows)


def taken(selector: Selector, chapters: Sequence[Chapter]):
    """(chapter id, refusal reason or None) for each chapter offered in order."""
    return [(c.id, selector.take(c)) for c in chapters]


# -- ids and paths ------------------------------------------------------------------------------
def test_ids_groups_and_paths():
    assert selection.chapter_id("47", 3) == "librivox-47-003" and selection.book_key("47") == "librivox-book-47"
    assert selection.audio_relpath(chapter("501", "101", 2)) == "audio/501/101-002.mp3"


# -- chapters_of_book -----------------------------------------------------------------------------
def test_a_chapter_read_by_several_readers_is_rejected_and_the_book_is_not_solo():
    b = book(section(1, ["1"]), section(2, ["1", "2"]), section(3, ["2"]))
    kept, rejects, solo = selection.chapters_of_book(b, page(row(1, ["1"]), row(2, ["1", "2"]), row(3, ["2"])))
    assert [c.id for c in kept] == ["librivox-7-001", "librivox-7-003"] and not solo
    assert [(r.id, r.stage, r.reason, r.message) for r in rejects] == [
        ("librivox-7-002", "select", "multiple_readers", "read by 2 readers")]


def test_one_reader_for_every_kept_chapter_makes_a_solo_book_in_section_order():
    b = book(section(2, ["5"]), section(1, ["5"]), section(3, ["5", "6"]))
    kept, rejects, solo = selection.chapters_of_book(b, page(row(1, ["5"]), row(2, ["5"]), row(3, ["5", "6"])))
    assert [c.section_number for c in kept] == [1, 2] and solo
    assert [r.reason for r in rejects] == ["multiple_readers"]
    c = kept[0]
    assert (c.reader_id, c.reader_name, c.url, c.kbps, c.playtime_s, c.book_url, c.language) == (
        "5", "Reader 5", "http://m/a_64kb.mp3", 64, 60.0, "http://m/book-7/", "English")


def test_reader_checks_against_the_book_page():
    b = book(section(1, []), section(2, ["x1"]), section(3, ["4"]), section(None, ["4"], section_id="a/b"))
    kept, rejects, _ = selection.chapters_of_book(b, page(row(1, ["8"]), row(2, ["x1"]), row(3, ["9"])))
    assert kept[0].reader_id == "8" and kept[0].reader_name == "Page 8"  # no API reader: the page's link
    assert [(r.id, r.reason) for r in rejects] == [
        ("librivox-7-002", "non_numeric_reader_id"), ("librivox-7-003", "reader_mismatch"),
        ("librivox-7-sa_b", "bad_section_number")]  # an id made safe for a file name


def test_audio_links_by_quality_and_missing_rows():
    b = book(section(1, ["1"], playtime=None), section(2, ["1"]))
    kept, rejects, _ = selection.chapters_of_book(b, page(row(1, ["1"]), row(2, ["1"], mp3_64=None)))
    assert [c.id for c in kept] == ["librivox-7-001"] and kept[0].playtime_s == 61.0  # the page's duration
    assert [(r.id, r.reason, r.message) for r in rejects] == [("librivox-7-002", "no_audio", "no 64 kb MP3 link")]
    kept, rejects, _ = selection.chapters_of_book(b, page(row(1, ["1"])))
    assert [(r.id, r.message) for r in rejects] == [("librivox-7-002", "no section row on the book page")]
    kept, rejects, _ = selection.chapters_of_book(b, None, quality=64)  # no page: no 64 kb link
    assert kept == [] and {r.reason for r in rejects} == {"no_audio"}


# -- Selector -------------------------------------------------------------------------------------
def test_max_readers_keeps_the_first_readers_in_discovery_order():
    s = Selector(max_readers=2)
    assert taken(s, [chapter("1", "10"), chapter("2", "10", 2), chapter("3", "11"), chapter("1", "12")]) == [
        ("librivox-10-001", None), ("librivox-10-002", None), ("librivox-11-001", "max_readers"),
        ("librivox-12-001", None)]  # a reader already taken may go on
    assert s.refusal("3", "11") == "max_readers" and s.refusal("2", "99") is None


def test_max_books_per_reader_counts_books_not_chapters():
    s = Selector(max_books_per_reader=1)
    assert [reason for _, reason in taken(s, [chapter("1", "10"), chapter("1", "10", 2), chapter("1", "11")])] == [
        None, None, "max_books_per_reader"]


def test_max_seconds_per_reader_adds_up_what_was_taken():
    s = Selector(max_seconds_per_reader=100)
    assert [reason for _, reason in taken(s, [chapter("1", "10", 1, 60), chapter("1", "10", 2, 50),
                                              chapter("1", "10", 3, 40), chapter("2", "11", 1, 101),
                                              chapter("3", "12", 1, None)])] == [
        None, "max_seconds_per_reader", None, "max_seconds_per_reader", None]
    assert s.readers["1"]["seconds"] == 100 and s.readers["1"]["books"] == {"10"} and "2" not in s.readers


def test_excluded_readers_are_refused_first():
    s = Selector(max_readers=1, exclude=["1"])
    assert taken(s, [chapter("1", "10"), chapter("2", "10", 2)]) == [("librivox-10-001", "excluded_reader"),
                                                                     ("librivox-10-002", None)]


def test_saturated_only_when_no_reader_can_take_more():
    assert not Selector().saturated() and not Selector(max_readers=1).saturated()
    s = Selector(max_readers=1, max_books_per_reader=1)
    assert not s.saturated()
    s.take(chapter("1", "10"))
    assert s.saturated()  # the reader cap is full and its one reader has its book
    s = Selector(max_readers=1)
    s.take(chapter("1", "10"))
    assert not s.saturated()  # no per-reader cap: the one reader may go on


# -- apply_min_seconds ----------------------------------------------------------------------------
def test_apply_min_seconds_drops_every_chapter_of_a_short_reader_keeping_the_order():
    chapters = [chapter("1", "10", 1, 20), chapter("2", "11", 1, 60), chapter("1", "10", 2, 30),
                chapter("3", "12", 1, None)]
    kept, rejects = selection.apply_min_seconds(chapters, 60)
    assert [c.id for c in kept] == ["librivox-11-001"]
    assert [(r.id, r.stage, r.reason) for r in rejects] == [
        ("librivox-10-001", "select", "min_seconds_per_reader"), ("librivox-10-002", "select", "min_seconds_per_reader"),
        ("librivox-12-001", "select", "min_seconds_per_reader")]
    assert rejects[0].message == "reader 1 has 50 s < 60 s" and rejects[0].url == chapters[0].url
    assert selection.apply_min_seconds(chapters, 0) == (chapters, [])


# -- duration checks ------------------------------------------------------------------------------
def test_duration_checks():
    assert selection.expected_seconds(24000, 64) == pytest.approx(3.0)
    assert selection.seconds_agree(123.0, None, 0.15) and selection.seconds_agree(1.0, 0.0, 0.15)  # nothing to check
    assert selection.seconds_agree(5.0, 3.0, 0.15) and not selection.seconds_agree(5.1, 3.0, 0.15)  # at least 2 s
    assert selection.seconds_agree(115.0, 100.0, 0.15) and not selection.seconds_agree(116.0, 100.0, 0.15)
    assert selection.duration_ok(24000, 3.0, 64, 0.15) and not selection.duration_ok(24000, 30.0, 64, 0.15)
    assert selection.duration_ok(48000, 3.0, 128, 0.15)  # the bitrate matters
