"""Fixtures for the scraper tests: the local LibriVox (scrapers/librivox/localsite.py) on 127.0.0.1, and a
headless Chromium for the browser tests.

The site, its bodies and its generated audio live in the package so the demo can start it too; these
fixtures share one site per session and reset its request log per test. API bodies for `?id=N` come
from the saved real responses when that folder exists (set LIBRIVOX_API_DIR to another, or a missing,
folder to run without them).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import List, Optional

import pytest

from pipelines.manifest import ManifestRecord, parse_line
from scrapers import browser
from scrapers.librivox.localsite import DEFAULT_API_DIR, LocalLibriVox, make_audio

REAL_API_DIR = DEFAULT_API_DIR


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


def assert_manifest_round_trip(out: Path) -> List[ManifestRecord]:
    """The contract round trip: every line a scraper wrote to OUT/manifest.jsonl parses back with the builder's
    reader (pipelines.manifest.parse_line) into the values written, in the same order (contract fields, then
    the source's `extra`), with its path resolved against OUT. Returns the records."""
    records = []
    for n, line in enumerate((out / "manifest.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        written = json.loads(line)
        record = parse_line(line, str(out), n)
        assert record.path == os.path.normpath(os.path.join(str(out), written["path"]))
        assert list(dataclasses.replace(record, path=written["path"]).to_json().items()) == list(written.items())
        records.append(record)
    assert records, "an empty manifest proves nothing"
    return records
