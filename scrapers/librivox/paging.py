"""Resumable API paging: each API page is recorded in OUT/api_pages.jsonl as it is fetched.

One line per page (`offset`, `limit`, the raw `books`), appended and fsync'ed (a torn last line is cut
on reopening), then one `end` line when paging reached the end ("could not be found", or a short page).
A rerun with the same config replays the recorded pages without a request and continues at the next
unfetched offset; once the end is recorded, discovery makes no API request at all. Offsets are absolute
positions in the API's list, so a rerun may change `--limit`.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterator, List, Optional

from scrapers.librivox import api
from scrapers.jsonl import JsonlAppender, read_jsonl

log = logging.getLogger(__name__)

PAGES_FILE = "api_pages.jsonl"


def _key(record: Dict) -> tuple:
    return ("end" in record, record["offset"])


class PageLog:
    """The API pages fetched so far for one output folder (read-only for a dry run)."""

    def __init__(self, out: str, write: bool = True):
        self.path = os.path.join(out, PAGES_FILE)
        records = read_jsonl(self.path)
        self.pages: List[Dict] = sorted((r for r in records if "end" not in r), key=lambda r: r["offset"])
        ends = [r for r in records if "end" in r]
        self.end: Optional[Dict] = ends[-1] if ends else None
        self._appender = JsonlAppender(self.path, key=_key) if write else None

    @property
    def finished(self) -> bool:
        return self.end is not None

    def next_offset(self, start: int) -> int:
        """Where paging continues: after the last recorded page, or `start` in a new folder."""
        if not self.pages:
            return start
        last = self.pages[-1]
        if start != self.pages[0]["offset"]:
            log.info("%s records pages from offset %d: continuing at %d (--offset %d ignored)", self.path,
                     self.pages[0]["offset"], last["offset"] + last["limit"], start)
        return last["offset"] + last["limit"]

    def add(self, offset: int, limit: int, books: List[Dict]) -> None:
        record = {"offset": offset, "limit": limit, "books": books}
        self.pages.append(record)
        if self._appender is not None:
            self._appender.append(record)

    def finish(self, offset: int, reason: str) -> None:
        self.end = {"offset": offset, "end": reason}
        if self._appender is not None:
            self._appender.append(self.end)

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()


def iter_books(pages_log: PageLog, get_text, base_url: str, limit: int, start: int, max_pages: Optional[int],
               filters: Dict, progress: Dict) -> Iterator[api.Book]:
    """Books of the recorded pages (no request), then of new pages until the end or `max_pages` new pages.

    `progress` receives `next_offset` (None once the end is reached), `pages_recorded`, `pages_fetched`
    and `finished`. API and fetch errors propagate; the pages before them stay recorded.
    """
    progress.update(pages_fetched=0, finished=pages_log.finished)
    for page in list(pages_log.pages):
        yield from (api.parse_book(b) for b in page["books"])
    offset = pages_log.next_offset(start)
    progress.update(next_offset=None if pages_log.finished else offset, pages_recorded=len(pages_log.pages))
    while not pages_log.finished and (max_pages is None or progress["pages_fetched"] < max_pages):
        progress["next_offset"] = offset
        raw = api.fetch_page(get_text, base_url, limit, offset, **filters)
        if raw is None:
            pages_log.finish(offset, "not_found")
            break
        pages_log.add(offset, limit, raw)
        progress["pages_fetched"] += 1
        progress["pages_recorded"] = len(pages_log.pages)
        offset += limit
        progress["next_offset"] = offset
        if len(raw) < limit:
            pages_log.finish(offset, "short_page")
        yield from (api.parse_book(b) for b in raw)
    if pages_log.finished:
        progress.update(next_offset=None, finished=True)
