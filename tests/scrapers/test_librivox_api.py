"""API parsing on both body shapes and both error shapes: real saved responses when present, generated always."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from scrapers.http import FetchError, PoliteSession
from scrapers.librivox import api
from scrapers.librivox.localsite import DB_ERROR_PAGE, NOT_FOUND, api_book, books_body
from tests.scrapers.conftest import real_api_files


@pytest.mark.parametrize("as_list", [False, True])
def test_generated_bodies_in_both_shapes(as_list):
    body = books_body([api_book("101", "x"), api_book("102", "x")], as_list=as_list)
    books = api.parse_response(body)
    assert [b.book_id for b in books] == ["101", "102"]
    b = books[1]
    assert b.url_librivox == "https://librivox.org/book-102/" and b.genres == ("Short Stories",)
    s2 = b.sections[1]
    assert s2.number == 2 and s2.playtime_s == 3.0 and [r.reader_id for r in s2.readers] == ["502", "503"]
    assert b.sections[3].listen_url is None


def test_object_keyed_by_index_keeps_numeric_order():
    body = json.dumps({"books": {"10": {"id": "b"}, "2": {"id": "a"}}})
    assert [b.book_id for b in api.parse_response(body)] == ["a", "b"]


def test_error_shapes():
    with pytest.raises(api.NotFound):
        api.parse_response(NOT_FOUND)
    with pytest.raises(api.ApiError) as exc:
        api.parse_response(DB_ERROR_PAGE)
    assert exc.value.reason == "html_error_page" and "Database Error" in exc.value.message
    assert "Unable to connect" in exc.value.message
    with pytest.raises(api.ApiError, match="invalid_json"):
        api.parse_response('{"books": ')
    with pytest.raises(api.ApiError, match="api_error"):
        api.parse_response('{"error": "something else"}')


def test_empty_string_and_null_listen_url_both_mean_no_audio():
    s = api.parse_section({"id": "1", "section_number": "0", "listen_url": "", "playtime": "12", "readers": []})
    assert s.listen_url is None and s.number == 0 and s.readers == ()
    assert api.parse_section({"id": "1", "section_number": "x", "listen_url": None}).number is None


def test_api_url_parameters():
    url = api.api_url("http://h", extended=1, limit=50, offset=100, since=5, genre="Poetry", author=None,
                      fields=["id", "title"])
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert url.startswith("http://h/api/feed/audiobooks/?format=json")
    assert q["limit"] == ["50"] and q["offset"] == ["100"] and q["genre"] == ["Poetry"] and "author" not in q
    assert q["fields[]"] == ["id", "title"] and q["extended"] == ["1"]


def test_real_saved_responses_parse_or_fail_clearly():
    files = real_api_files()
    if files is None:  # the shared folder is absent: the generated shapes above cover the same ground
        files = []
    counts = {"books": 0, "not_found": 0, "html": 0}
    sections = single = 0
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        try:
            books = api.parse_response(text)
        except api.NotFound:
            counts["not_found"] += 1
            continue
        except api.ApiError as exc:
            assert exc.reason == "html_error_page"
            counts["html"] += 1
            continue
        counts["books"] += 1
        assert len(books) == 1 and books[0].book_id == f.stem.rsplit("_", 1)[1]
        for s in books[0].sections:
            sections += 1
            single += len(s.readers) == 1
            assert all(r.reader_id.isdigit() for r in s.readers)
    if files:
        assert counts == {"books": 400, "not_found": 10, "html": 10}
        assert sections > 8000 and single / sections > 0.9


def test_paging_over_http_until_not_found(server):
    s = PoliteSession(allowed_hosts=("127.0.0.1",), min_interval=0)

    def get(url):  # the end of paging / an unknown id: the error body comes with HTTP 404, as on the real site
        return s.get_text(url, accept=api.ANSWER_STATUSES)

    with pytest.raises(FetchError, match="http_404"):
        s.get_text(api.api_url(server.base, id="9001"))
    pages = list(api.iter_pages(get, server.base, limit=2))
    assert [off for off, _ in pages] == [0, 2, 4]  # 5 books: pages of 2, 2, 1 (list and object shapes)
    assert [b.book_id for _, bs in pages for b in bs] == ["101", "102", "103", "104", "105"]
    assert api.fetch_book(get, server.base, "104").title == "Second Solo Book"
    with pytest.raises(api.ApiError, match="html_error_page"):
        api.fetch_book(get, server.base, "9002")
    with pytest.raises(api.NotFound):
        api.fetch_book(get, server.base, "9001")
    if real_api_files():
        assert api.fetch_book(get, server.base, "10066").title == "July"


def test_filter_books_by_language_and_genre():
    books = api.parse_response(books_body([api_book("101", "x"), api_book("102", "x")], as_list=True))
    assert [b.book_id for b in api.filter_books(books, genre="poetry")] == ["101"]
    assert api.filter_books(books, language="German") == []
