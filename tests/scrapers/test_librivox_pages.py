"""BeautifulSoup parsers of the book page and the search results (no browser)."""
from __future__ import annotations

import pytest

from scrapers.librivox import pages
from scrapers.librivox.localsite import all_results, book_page, search_results


def test_book_page_rows_links_readers_and_sidebar():
    page = pages.parse_book_page(book_page("102", "http://m"), "http://m/book-102/")
    assert page.book_id == "102" and page.title == "Group Book"
    assert page.zip_url.endswith("_64kb_mp3.zip") and page.running_time_s == 9 and page.read_by == "Various"
    rows = {r.number: r for r in page.sections}
    assert rows[1].mp3_64 == "http://m/audio/b1_64kb.mp3" and rows[1].mp3_128 == "http://m/audio/b1_128kb.mp3"
    assert rows[1].reader_ids == ("502",) and rows[1].reader_names == ("Bob Reader",)
    assert rows[2].reader_ids == ("502", "503")
    assert rows[4].mp3_64 is None and rows[4].mp3_128 is None  # a section without audio
    assert rows[5].reader_ids == ("abc",)  # kept as written; the selection rejects it
    assert rows[3].duration_s == 3


def test_book_page_without_chapter_table():
    with pytest.raises(pages.PageError) as exc:
        pages.parse_book_page(book_page("103", "http://m"), "http://m/book-103/")
    assert exc.value.reason == "no_chapter_table"


def test_relative_links_are_made_absolute_and_hms_parsing():
    html = ('<table class="chapter-download"><tr><td><a class="play-btn" href="/a_64kb.mp3"></a>1</td>'
            '<td><a class="chapter-name" href="a_128kb.mp3">One</a></td>'
            '<td><a href="/reader/77">R</a></td><td>1:02:03</td></tr></table>')
    row = pages.parse_book_page(html, "https://librivox.org/book/").sections[0]
    assert row.mp3_64 == "https://librivox.org/a_64kb.mp3" and row.mp3_128 == "https://librivox.org/book/a_128kb.mp3"
    assert row.duration_s == 3723 and row.reader_ids == ("77",)
    assert pages.parse_hms("12:05") == 725 and pages.parse_hms("") is None


def test_search_results_parser():
    res = pages.parse_search_results("<ul>" + all_results({"project_type": "solo"}) + "</ul>", "http://m")
    assert [r.url for r in res] == [f"https://librivox.org/book-{b}/" for b in ("101", "103", "104", "105")]
    assert res[0].title == "Solo Book" and "Solo" in res[0].meta
    assert pages.parse_search_results(search_results({"recorded_language": "German"}), "http://m") == []
