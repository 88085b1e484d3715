"""Fixtures for the scraper tests: the local LibriVox (scrapers/librivox/localsite.py) on 127.0.0.1, and a
headless Chromium for the browser tests.

The site, its bodies and its generated audio live in the package so the demo can start it too; these
fixtures share one site per session and reset its request log per test. API bodies for `?id=N` come
from the saved real responses when that folder exists (set LIBRIVOX_API_DIR to another, or a missing,
folder to run without them).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest

from scrapers import browser
from scrapers.librivox.localsite import (BOOKS, DB_ERROR_PAGE, DEFAULT_API_DIR, NOT_FOUND, LocalLibriVox,  # noqa: F401
                                         all_results, api_book, book_page, books_body, make_audio,
                                         search_results)

REAL_API_DIR = DEFAULT_API_DIR
FakeLibriVox = LocalLibriVox


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("fake_audio"))


@pytest.fixture(scope="session")
def _server(audio_dir):
    srv = LocalLibriVox(audio_dir, api_dir=REAL_API_DIR)
    yield srv
    srv.close()


@pytest.fixture()
def server(_server) -> LocalLibriVox:
    _server.reset()
    _server.slow_delay = 0.08
    return _server


@pytest.fixture(scope="module")
def driver():
    """A headless Chromium per test module (the browser tests fail, not skip, without one)."""
    try:
        browser.find_chromium()
        browser.find_chromedriver()
    except browser.BrowserUnavailable as exc:
        pytest.fail(f"headless Chromium is required for this test: {exc}")
    with browser.headless_chromium() as d:
        yield d


def real_api_files() -> Optional[List[Path]]:
    return sorted(REAL_API_DIR.glob("audiobook_id_*.json")) if REAL_API_DIR.is_dir() else None
