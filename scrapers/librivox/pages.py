"""LibriVox HTML: book page and catalogue search results (BeautifulSoup), and the search page object.

The BeautifulSoup parsers take saved HTML; the Selenium `SearchPage` drives the JavaScript search
form and hands the rendered DOM to the same parser, so both return the same data.
"""
from __future__ import annotations

import dataclasses
import re
import urllib.parse
from typing import List, Optional, Tuple

from bs4 import BeautifulSoup

READER_HREF = re.compile(r"/reader/([^/?#]+)/?(?:[?#].*)?$")
RSS_HREF = re.compile(r"/rss/([0-9]{1,18})/?\Z")


class PageError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclasses.dataclass(frozen=True)
class PageSection:
    """One row of `table.chapter-download`."""

    number: Optional[int]
    title: str
    mp3_64: Optional[str]
    mp3_128: Optional[str]
    reader_ids: Tuple[str, ...]  # as written in the links; may be non-numeric
    reader_names: Tuple[str, ...]
    duration_s: Optional[float]


@dataclasses.dataclass(frozen=True)
class BookPage:
    url: str
    book_id: Optional[str]
    title: str
    zip_url: Optional[str]
    running_time_s: Optional[float]
    read_by: str
    sections: Tuple[PageSection, ...]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    url: str
    title: str
    meta: str


def parse_hms(text: str) -> Optional[float]:
    """'01:02:03', '2:03' or '45' to seconds."""
    m = re.search(r"(?<![0-9])([0-9]{1,9}(?::[0-9]{1,2}){0,2})(?![0-9])", text or "")
    if not m:
        return None
    seconds = 0.0
    for part in m.group(1).split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def _abs(base: str, href: Optional[str]) -> Optional[str]:
    href = (href or "").strip()
    return urllib.parse.urljoin(base, href) if href else None


def parse_book_page(html: str, url: str) -> BookPage:
    """The chapter table and sidebar of a book page; PageError('no_chapter_table') without the table."""
    soup = BeautifulSoup(html, "html.parser")
    table = soup.select_one("table.chapter-download")
    if table is None:
        raise PageError("no_chapter_table", f"{url} has no table.chapter-download")
    sections = []
    for row in table.select("tr"):
        cells = row.find_all("td")
        if not cells:
            continue  # header row
        play = row.select_one("a.play-btn")
        name = row.select_one("a.chapter-name")
        reader_links = [a for a in row.select("a[href]") if READER_HREF.search(a["href"])]
        number = None
        num_text = cells[0].get_text(" ", strip=True)
        m = re.search(r"(?<![0-9])[0-9]{1,9}(?![0-9])", num_text)
        if m:
            number = int(m.group())
        time_text = cells[-1].get_text(" ", strip=True)
        sections.append(PageSection(
            number=number, title=name.get_text(" ", strip=True) if name else "",
            mp3_64=_abs(url, play.get("href")) if play else None,
            mp3_128=_abs(url, name.get("href")) if name else None,
            reader_ids=tuple(READER_HREF.search(a["href"]).group(1) for a in reader_links),
            reader_names=tuple(a.get_text(" ", strip=True) for a in reader_links),
            duration_s=parse_hms(time_text) if re.search(r"\d:\d", time_text) else None))
    book_id = None
    for a in soup.select("a[href]"):
        m = RSS_HREF.search(a["href"])
        if m:
            book_id = m.group(1)
            break
    zip_link = soup.select_one("dl.listen-download a[href$='.zip']")
    running, read_by = None, ""
    details = soup.select_one("dl.product-details")
    if details is not None:
        for dt in details.find_all("dt"):
            dd = dt.find_next_sibling("dd")
            label = dt.get_text(" ", strip=True).lower()
            if dd is None:
                continue
            if "running time" in label:
                running = parse_hms(dd.get_text(" ", strip=True))
            elif "read by" in label:
                read_by = dd.get_text(" ", strip=True)
    title_el = soup.select_one("h1")
    return BookPage(url=url, book_id=book_id, title=title_el.get_text(" ", strip=True) if title_el else "",
                    zip_url=_abs(url, zip_link.get("href")) if zip_link else None,
                    running_time_s=running, read_by=read_by, sections=tuple(sections))


def parse_search_results(html: str, base_url: str) -> List[SearchResult]:
    """`li.catalog-result` blocks: the book page link, title and the meta line (e.g. 'Complete | Solo | English')."""
    soup = BeautifulSoup(html, "html.parser")
    out = []
    for li in soup.select("li.catalog-result"):
        link = li.select_one("h3 a[href]") or li.select_one("a[href]")
        if link is None:
            continue
        meta = li.select_one(".book-meta")
        out.append(SearchResult(url=_abs(base_url, link["href"]), title=link.get_text(" ", strip=True),
                                meta=meta.get_text(" ", strip=True) if meta else ""))
    return out


class SearchPage:
    """Page object for the catalogue's advanced search, as LibriVox/librivox-catalog renders it
    (views/catalog/partials/advanced_search.php, the script in partials/footer.php).

    `/search/advanced_search` redirects to `/search` with the form `#advanced_search_form` shown (on a plain
    `/search` it is hidden). Its selects are `#project_type` (either/solo/group), `#status`
    (all/complete/in_progress/open), `#recorded_language` (values are language *ids*, the labels are
    names, so it is chosen by label), `#genre_id` (genre ids) and `#sort_order` (catalog_date/alpha).
    `#advanced_search_form_submit` sends the form by XHR to `/advanced_search`; the script puts a
    spinner, then the `li.catalog-result` blocks (or "No results found") into `ul.browse-list` and page
    links (`a.page-number[data-page_number]`) into `.page-number-nav`. Explicit waits only.
    """

    _PROJECT_TYPE = ("css selector", "select#project_type")
    _STATUS = ("css selector", "select#status")
    _LANGUAGE = ("css selector", "select#recorded_language")
    _GENRE = ("css selector", "select#genre_id")
    _SORT = ("css selector", "select#sort_order")
    _SUBMIT = ("css selector", "#advanced_search_form_submit")
    _LIST = ("css selector", "ul.browse-list")
    _RESULT = ("css selector", "ul.browse-list li.catalog-result")
    _SPINNER = ("css selector", "ul.browse-list .loading_img")
    _PAGE_LINK = "a.page-number[data-page_number='{n}']"

    def __init__(self, driver, base_url: str, timeout: float = 20.0):
        self.driver, self.base_url, self.timeout = driver, base_url.rstrip("/"), timeout

    def _wait(self, condition):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, self.timeout).until(condition)

    def open(self) -> "SearchPage":
        from selenium.webdriver.support import expected_conditions as EC

        self.driver.get(self.base_url + "/search/advanced_search")
        self._wait(EC.element_to_be_clickable(self._SUBMIT))
        return self

    def _select(self, locator, value: Optional[str] = None, label: Optional[str] = None) -> None:
        from selenium.webdriver.support.ui import Select

        if value is None and label is None:
            return
        select = Select(self.driver.find_element(*locator))
        if label is not None:
            select.select_by_visible_text(label)
        else:
            select.select_by_value(str(value))

    def _results_loaded(self, driver) -> bool:
        """The XHR answered: result blocks, or the list's "No results" text and no spinner."""
        if driver.find_elements(*self._SPINNER):
            return False
        if driver.find_elements(*self._RESULT):
            return True
        lists = driver.find_elements(*self._LIST)
        return bool(lists) and "no results" in lists[0].text.lower()

    def search(self, project_type: str = "solo", language: Optional[str] = None, genre_id: Optional[int] = None,
               sort_order: Optional[str] = None, status: str = "complete",
               max_pages: Optional[int] = None) -> List[SearchResult]:
        """Fill the form (language by its name), submit, wait for the results, follow the result pages
        (up to `max_pages`); parse each page's rendered DOM with `parse_search_results`."""
        from selenium.webdriver.support import expected_conditions as EC

        self._select(self._PROJECT_TYPE, project_type)
        self._select(self._STATUS, status)
        self._select(self._LANGUAGE, label=language)
        self._select(self._GENRE, genre_id)
        self._select(self._SORT, sort_order)
        self.driver.find_element(*self._SUBMIT).click()
        results: List[SearchResult] = []
        page = 1
        while True:
            self._wait(self._results_loaded)
            results += parse_search_results(self.driver.page_source, self.base_url)
            if max_pages is not None and page >= max_pages:
                break
            links = self.driver.find_elements("css selector", self._PAGE_LINK.format(n=page + 1))
            if not links:
                break
            first = self.driver.find_elements(*self._RESULT)
            links[0].click()
            if first:
                self._wait(EC.staleness_of(first[0]))
            page += 1
        return results
