"""Headless Chromium for the pages that need JavaScript (Selenium 4).

Flags that work as root in a container; a fresh profile in a temporary folder that is removed on
close. Callers point it only at hosts their PoliteSession allows.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional, Sequence

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--no-first-run", "--disable-extensions",
         "--disable-sync", "--no-default-browser-check", "--window-size=1280,1024")


class BrowserUnavailable(RuntimeError):
    pass


def _first_existing(env: str, candidates) -> Optional[str]:
    explicit = os.environ.get(env)
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for c in candidates:
        if os.path.exists(c):
            return c
    return shutil.which(os.path.basename(candidates[0]))


def find_chromium() -> str:
    path = _first_existing("SPEAKER_CHROMIUM", CHROMIUM_CANDIDATES)
    if not path:
        raise BrowserUnavailable("chromium not found: apt-get install chromium chromium-driver "
                                 "(or set SPEAKER_CHROMIUM)")
    return path


def find_chromedriver() -> str:
    path = _first_existing("SPEAKER_CHROMEDRIVER", CHROMEDRIVER_CANDIDATES)
    if not path:
        raise BrowserUnavailable("chromedriver not found: apt-get install chromium-driver "
                                 "(or set SPEAKER_CHROMEDRIVER)")
    return path


def host_resolver_rules(only_hosts: Sequence[str]) -> str:
    """Chromium rules that resolve only `only_hosts` (and their subdomains)."""
    excludes = []
    for h in only_hosts:
        excludes += [f"EXCLUDE {h}", f"EXCLUDE *.{h}"]
    return ", ".join(["MAP * ~NOTFOUND", *excludes])


@contextlib.contextmanager
def headless_chromium(user_agent: Optional[str] = None, page_load_timeout: float = 30.0,
                      only_hosts: Optional[Sequence[str]] = None) -> Iterator:
    """A headless Chromium WebDriver with a throw-away profile; quit and cleaned up on exit.

    With `only_hosts`, every other host name fails to resolve inside the browser (third-party scripts,
    fonts, trackers), so the page can reach nothing off the allow-list.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find_chromium()
    profile = tempfile.mkdtemp(prefix="speaker-chromium-")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if user_agent:
        options.add_argument(f"--user-agent={user_agent}")
    if only_hosts:
        options.add_argument(f"--host-resolver-rules={host_resolver_rules(only_hosts)}")
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=find_chromedriver()), options=options)
        driver.set_page_load_timeout(page_load_timeout)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
