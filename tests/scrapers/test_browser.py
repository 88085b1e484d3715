"""Real headless Chromium against the local JS search page (results appear ~1 s after submit)."""
from __future__ import annotations

import time

import pytest

from scrapers import browser
from scrapers.librivox import __main__ as cli
from scrapers.librivox import pages, scrape


@pytest.fixture(scope="module")
def driver():
    try:
        browser.find_chromium()
        browser.find_chromedriver()
    except browser.BrowserUnavailable as exc:
        pytest.fail(f"headless Chromium is required for this test: {exc}")
    with browser.headless_chromium() as d:
        yield d


def test_search_page_object_waits_for_js_results(server, driver):
    page = pages.SearchPage(driver, server.base).open()
    t0 = time.monotonic()
    results = page.search(project_type="solo", language="English", sort_order="alpha")
    assert time.monotonic() - t0 >= 0.9  # the results were inserted by JavaScript after ~1 s
    assert [r.url for r in results] == [f"https://librivox.org/book-{b}/" for b in ("101", "103", "104", "105")]
    assert results[0].title == "Solo Book" and "Solo" in results[0].meta
    sent = [r["path"] for r in server.requests if r["path"].startswith("/search_results")]
    assert "project_type=solo" in sent[-1] and "recorded_language=English" in sent[-1]
    # the same data as the BeautifulSoup parser reads from the rendered DOM
    assert results == pages.parse_search_results(driver.page_source, server.base)


def test_search_with_no_results_returns_empty(server, driver):
    assert pages.SearchPage(driver, server.base).open().search(project_type="solo", language="German") == []


def test_headless_flags_and_fresh_profile():
    assert "--headless=new" in browser.FLAGS and "--no-sandbox" in browser.FLAGS
    assert "--disable-background-networking" in browser.FLAGS
    assert browser.host_resolver_rules(["librivox.org"]) == "MAP * ~NOTFOUND, EXCLUDE librivox.org, EXCLUDE *.librivox.org"


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
