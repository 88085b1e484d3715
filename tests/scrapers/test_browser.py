"""Real headless Chromium against the local JS search page (results appear ~1 s after submit)."""
from __future__ import annotations

import time
import urllib.parse

import pytest

from scrapers import browser
from scrapers.librivox import __main__ as cli
from scrapers.librivox import pages, scrape
from scrapers.librivox.localsite import LANGUAGE_IDS


@pytest.mark.slow
def test_search_page_object_waits_for_js_results(server, driver):
    page = pages.SearchPage(driver, server.base).open()
    t0 = time.monotonic()
    results = page.search(project_type="solo", language="English", sort_order="alpha")
    assert time.monotonic() - t0 >= 1.8  # two result pages, each inserted by JavaScript ~1 s after its XHR
    assert [r.url for r in results] == [f"https://librivox.org/book-{b}/" for b in ("101", "103", "104", "105")]
    assert results[0].title == "Solo Book" and "Solo" in results[0].meta
    sent = [urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query, keep_blank_values=True)
            for r in server.requests if r["path"].startswith("/advanced_search?")]
    assert [q["search_page"] for q in sent] == [["1"], ["2"]]  # the second page through the page links
    assert all(q["project_type"] == ["solo"] and q["recorded_language"] == [LANGUAGE_IDS["English"]]
               and q["status"] == ["complete"] and q["sort_order"] == ["alpha"] and q["search_form"] == ["advanced"]
               for q in sent)
    # the same data as the BeautifulSoup parser reads from the rendered DOM (the last page is showing)
    assert results[2:] == pages.parse_search_results(driver.page_source, server.base)
    assert pages.SearchPage(driver, server.base).open().search(language="English", max_pages=1) == results[:2]


@pytest.mark.slow
def test_search_with_no_results_returns_empty(server, driver):
    assert pages.SearchPage(driver, server.base).open().search(project_type="solo", language="German") == []


@pytest.mark.slow
def test_advanced_form_is_hidden_on_the_plain_search_page(server, driver):
    driver.get(server.base + "/search")  # what the catalogue shows without /search/advanced_search
    time.sleep(0.5)  # the form would be revealed after 0.3 s; asserting its absence needs a fixed wait
    assert not driver.find_element("id", "advanced_search_form_submit").is_displayed()


def test_headless_flags_and_fresh_profile():
    assert "--headless=new" in browser.FLAGS and "--no-sandbox" in browser.FLAGS
    assert "--disable-background-networking" in browser.FLAGS
    assert browser.host_resolver_rules(["librivox.org"]) == "MAP * ~NOTFOUND, EXCLUDE librivox.org, EXCLUDE *.librivox.org"


@pytest.mark.slow
def test_scrape_with_selenium_search_discovery(server, tmp_path):
    cfg = cli.parse_config(["--out", str(tmp_path / "o"), "--base-url", server.base, "--min-interval", "0",
                            "--no-progress", "--search", "--language", "English", "--dry-run"])
    lines = []
    summary = scrape.run(cfg, echo=lines.append)
    assert [l.split("\t")[0] for l in lines[:-1]] == [
        "librivox-101-001", "librivox-101-002", "librivox-101-003", "librivox-104-001", "librivox-104-002",
        "librivox-105-001"]
    assert summary["rejected"] == {"no_chapter_table": 1}
    assert server.count("/robots.txt") == 1
