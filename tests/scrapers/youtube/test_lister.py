"""Real headless Chromium on the local channel page that appends items as it is scrolled (as YouTube does)."""
from __future__ import annotations

import pytest

from scrapers.youtube import lister, pages
from tests.scrapers.youtube.conftest import ALICE, ALICE_PAGES

pytestmark = pytest.mark.slow  # every test drives headless Chromium

ALL_ALICE = [v for page in ALICE_PAGES for v in page]


def test_scrolls_until_nothing_new_appears(yt, driver):
    page = lister.ListingPage(driver, yt.base + "/@alice/videos", scroll_wait=1.0, patience=2).open()
    listing = page.collect()
    assert [v.id for v in listing.videos] == ALL_ALICE  # 3 from ytInitialData, 5 only in the DOM
    assert yt.paths("/@alice/more") == ["/@alice/more?page=1", "/@alice/more?page=2", "/@alice/more?page=3"]
    assert page.scrolls == 2 + 2  # two scrolls brought items, then `patience` (2) scrolls in a row brought none
    scrolled = {v.id: v for v in listing.videos}["aliceVid007"]  # a DOM-only item, completed from the page
    assert (scrolled.title, scrolled.duration_s, scrolled.channel_id) == ("Lecture 7: Ice", 4.0, ALICE)
    assert listing.videos[0].title == "Lecture 1: Tides" and listing.channel_id == ALICE


def test_stops_scrolling_at_the_limit(yt, driver):
    listing = lister.ListingPage(driver, yt.base + "/@alice/videos", scroll_wait=1.0, patience=2).open().collect(4)
    assert [v.id for v in listing.videos] == ALL_ALICE[:4]
    assert yt.paths("/@alice/more") == ["/@alice/more?page=1"]  # 6 rendered after one scroll: enough


def test_static_page_without_dom_items_uses_initial_data(yt, driver):
    listing = lister.ListingPage(driver, yt.base + "/@bob/videos", scroll_wait=0.3, patience=1).open().collect()
    assert [v.id for v in listing.videos] == ["bobVideo001", "bobVideo002"]


def test_page_without_initial_data_is_a_clear_error(yt, driver):
    with pytest.raises(pages.PageError, match="no ytInitialData"):
        lister.ListingPage(driver, yt.base + "/@broken/videos", scroll_wait=0.3, patience=1).open().collect()
