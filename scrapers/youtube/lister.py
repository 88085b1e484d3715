"""Listing a channel's Videos tab, a playlist or search results in headless Chromium, scrolling as a user would.

YouTube renders the first items from the page's `ytInitialData` and appends more as the page is
scrolled; those later items exist only in the DOM. The page object scrolls until the limit is reached or
nothing new appears for `patience` scrolls (explicit waits, no fixed sleeps), then hands the rendered
page to the BeautifulSoup/JSON parsers in `pages`, which merge the DOM items with `ytInitialData`.
"""
from __future__ import annotations

from typing import Optional

from scrapers.http import FetchError
from scrapers.youtube import pages

_COUNT_JS = "return document.querySelectorAll(arguments[0]).length;"
_SCROLL_JS = "window.scrollTo(0, Math.max(document.documentElement.scrollHeight, document.body.scrollHeight));"


class ListingPage:
    """Page object for a scrolling listing page; `collect` returns the videos found."""

    _items = ", ".join(pages.DOM_ITEMS)

    def __init__(self, driver, url: str, scroll_wait: float = 2.0, patience: int = 3, timeout: float = 30.0,
                 max_bytes: Optional[int] = None):
        self.driver, self.url = driver, url
        self.scroll_wait, self.patience = scroll_wait, patience
        self.timeout, self.max_bytes = timeout, max_bytes
        self.scrolls = 0

    def open(self) -> "ListingPage":
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(self.url)
        WebDriverWait(self.driver, self.timeout).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
        return self

    def _count(self) -> int:
        return int(self.driver.execute_script(_COUNT_JS, self._items))

    def scroll(self, limit: Optional[int]) -> int:
        """Scroll until `limit` items are rendered or `patience` scrolls in a row add none; the item count."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        seen, idle = self._count(), 0
        while (limit is None or seen < limit) and idle < self.patience:
            self.driver.execute_script(_SCROLL_JS)
            self.scrolls += 1
            try:
                WebDriverWait(self.driver, self.scroll_wait, poll_frequency=0.05).until(
                    lambda d: self._count() > seen)
                idle = 0
            except TimeoutException:
                idle += 1
            seen = self._count()
        return seen

    def collect(self, limit: Optional[int] = None) -> pages.Listing:
        self.scroll(limit)
        html = self.driver.page_source
        if self.max_bytes is not None and len(html) > self.max_bytes:
            raise FetchError("too_large", f"{self.url}: the rendered page is larger than {self.max_bytes} characters")
        return pages.merge_listing(pages.parse_listing(html, self.url), pages.parse_dom_items(html), limit)


def list_in_browser(url: str, limit: Optional[int], user_agent: Optional[str], only_hosts, scroll_wait: float = 2.0,
                    patience: int = 3, timeout: float = 30.0, max_bytes: Optional[int] = None) -> pages.Listing:
    """Open `url` in a fresh headless Chromium that resolves only `only_hosts`, scroll, parse. A page that does not
    load within `timeout` seconds, or a browser failure, is a FetchError (one line), never a traceback."""
    from selenium.common.exceptions import TimeoutException, WebDriverException

    from scrapers.browser import BrowserUnavailable, headless_chromium

    try:
        with headless_chromium(user_agent=user_agent, only_hosts=only_hosts, page_load_timeout=timeout) as driver:
            return ListingPage(driver, url, scroll_wait, patience, timeout, max_bytes).open().collect(limit)
    except TimeoutException:
        raise FetchError("timeout", f"{url}: the page did not load within {timeout:g} s (--timeout)") from None
    except WebDriverException as exc:
        raise FetchError("browser_error", f"{url}: {pages.first_line(exc.msg or type(exc).__name__)}") from None
    except BrowserUnavailable as exc:
        raise FetchError("browser_unavailable", str(exc)) from None
