"""LibriVox selection policy, pure functions (no network, no files): which chapters to keep, under which caps.

`chapters_of_book` keeps the chapters read by exactly one reader, checked against the book page, when the book
id, reader id and section number are plain non-negative integers (`plain_id`: the only ids file names are made
of, so two chapters share a path only when they are the same chapter);
`Selector` applies exclusions and per-reader caps in discovery order (deterministic); `apply_min_seconds`
drops readers with too little audio; `duration_ok` / `seconds_agree` are the checks a download must pass
(its size, and its headers' duration, against the API playtime). scrape.py applies them: the selection in
its planning loop (`make_plan`), the duration checks on each download.
"""
from __future__ import annotations

import collections
import dataclasses
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pipelines.schema import safe_name
from scrapers.librivox import api, pages
from scrapers.output import Reject


PLAIN_ID = re.compile(r"(?:0|[1-9][0-9]{0,17})\Z")  # ASCII digits, no sign, no leading zero, no newline


def plain_id(value) -> bool:
    """`value` is a LibriVox id as file names may use it: a plain non-negative integer in canonical form."""
    return isinstance(value, str) and PLAIN_ID.match(value) is not None


@dataclasses.dataclass(frozen=True)
class Chapter:
    """One section read by one reader, as the plan downloads it and the manifest records it."""

    id: str
    book_id: str
    book_title: str
    book_url: str
    section_number: int
    section_id: str
    section_title: str
    reader_id: str
    reader_name: str
    url: str
    kbps: int
    playtime_s: Optional[float]
    language: str


def chapter_id(book_id: str, number: int) -> str:
    """The manifest id of section `number` of a book: `librivox-<book>-<NNN>`."""
    return f"librivox-{book_id}-{number:03d}"


def book_key(book_id: str) -> str:
    """The manifest group of a book's chapters (and the id of a book-level rejection)."""
    return f"librivox-book-{book_id}"


def chapters_of_book(book: api.Book, page: Optional[pages.BookPage], quality: int = 64
                     ) -> Tuple[List[Chapter], List[Reject], bool]:
    """Chapters read by exactly one (numeric) reader, with an audio link; and whether the book is solo.

    Readers come from the API (extended=1) and are checked against the book page's reader links. A book
    whose id is not a plain integer is one rejection (invalid_id); so is a reader id (non_numeric_reader_id)
    or a section number (bad_section_number) that is not.
    """
    kept: List[Chapter] = []
    rejects: List[Reject] = []
    if not plain_id(book.book_id):
        return [], [Reject(book_key(safe_name(book.book_id)), "select", "invalid_id",
                           f"book id {book.book_id[:40]!r} is not a plain non-negative integer")], False
    rows = {}
    if page is not None:
        for i, row in enumerate(page.sections):
            rows.setdefault(row.number if row.number is not None else i + 1, row)
    for sec in sorted(book.sections, key=lambda s: (s.number is None, s.number or 0, s.section_id)):
        if sec.number is None:
            rejects.append(Reject(f"librivox-{book.book_id}-s{safe_name(sec.section_id)}", "select",
                                  "bad_section_number", f"section {sec.section_id} has no numeric section_number"))
            continue
        cid = chapter_id(book.book_id, sec.number)
        row = rows.get(sec.number)
        readers = list(sec.readers)
        page_ids = tuple(row.reader_ids) if row is not None else ()
        if not readers and page_ids:
            readers = [api.Reader(r, n) for r, n in zip(row.reader_ids, row.reader_names)]
        ids = {r.reader_id for r in readers} | set(page_ids)
        bad = sorted(i for i in ids if not plain_id(i))
        if bad:
            rejects.append(Reject(cid, "select", "non_numeric_reader_id",
                                  f"reader id(s) {[b[:40] for b in bad]} not plain non-negative integers"))
            continue
        api_ids = {r.reader_id for r in readers}
        if len(api_ids) == 0:
            rejects.append(Reject(cid, "select", "no_reader", "no reader listed"))
            continue
        if len(api_ids) > 1:
            rejects.append(Reject(cid, "select", "multiple_readers", f"read by {len(api_ids)} readers"))
            continue
        if page_ids and set(page_ids) != api_ids:
            rejects.append(Reject(cid, "select", "reader_mismatch",
                                  f"API says {sorted(api_ids)}, book page says {sorted(set(page_ids))}"))
            continue
        url, kbps = None, quality
        if row is not None:
            url = row.mp3_64 if quality == 64 else row.mp3_128
        if url is None and quality == 128 and sec.listen_url and "_128kb" in sec.listen_url:
            url = sec.listen_url  # real listen_urls also point at other hosts and unknown bitrates: not those
        if url is None:
            rejects.append(Reject(cid, "select", "no_audio",
                                  "no section row on the book page" if row is None and page is not None
                                  else f"no {quality} kb MP3 link"))
            continue
        playtime = sec.playtime_s if sec.playtime_s else (row.duration_s if row is not None else None)
        kept.append(Chapter(id=cid, book_id=book.book_id, book_title=book.title,
                            book_url=page.url if page else (book.url_librivox or ""), section_number=sec.number,
                            section_id=sec.section_id, section_title=sec.title, reader_id=readers[0].reader_id,
                            reader_name=readers[0].name, url=url, kbps=kbps, playtime_s=playtime,
                            language=book.language))
    solo = len({c.reader_id for c in kept}) == 1
    return kept, rejects, solo


class Selector:
    """Per-reader caps and exclusions, applied in discovery order (deterministic)."""

    def __init__(self, max_readers: Optional[int] = None, max_books_per_reader: Optional[int] = None,
                 max_seconds_per_reader: Optional[float] = None, exclude: Iterable[str] = ()):
        self.max_readers, self.max_books = max_readers, max_books_per_reader
        self.max_seconds = max_seconds_per_reader
        self.exclude = set(exclude)
        self.readers: Dict[str, Dict] = {}  # reader id -> {"books": set, "seconds": float, "name": str}

    def refusal(self, reader_id: str, book_id: str, seconds: float = 0.0) -> Optional[str]:
        """Why a chapter of `reader_id` in `book_id` would not be taken, or None."""
        if reader_id in self.exclude:
            return "excluded_reader"
        state = self.readers.get(reader_id)
        if state is None:
            if self.max_readers is not None and len(self.readers) >= self.max_readers:
                return "max_readers"
            return None if (self.max_seconds is None or seconds <= self.max_seconds) else "max_seconds_per_reader"
        if book_id not in state["books"] and self.max_books is not None and len(state["books"]) >= self.max_books:
            return "max_books_per_reader"
        if self.max_seconds is not None and state["seconds"] + seconds > self.max_seconds:
            return "max_seconds_per_reader"
        return None

    def take(self, ch: Chapter) -> Optional[str]:
        reason = self.refusal(ch.reader_id, ch.book_id, ch.playtime_s or 0.0)
        if reason is None:
            st = self.readers.setdefault(ch.reader_id, {"books": set(), "seconds": 0.0, "name": ch.reader_name})
            st["books"].add(ch.book_id)
            st["seconds"] += ch.playtime_s or 0.0
        return reason

    def saturated(self) -> bool:
        """No further chapter can be taken: the reader cap is full and every reader is at a cap."""
        if self.max_readers is None or len(self.readers) < self.max_readers:
            return False
        if self.max_books is None and self.max_seconds is None:
            return False
        return all((self.max_books is not None and len(s["books"]) >= self.max_books)
                   or (self.max_seconds is not None and s["seconds"] >= self.max_seconds)
                   for s in self.readers.values())


def apply_min_seconds(chapters: Sequence[Chapter], min_seconds: float) -> Tuple[List[Chapter], List[Reject]]:
    """Drop the chapters of readers whose kept seconds stay below `min_seconds`."""
    total: Dict[str, float] = collections.defaultdict(float)
    for c in chapters:
        total[c.reader_id] += c.playtime_s or 0.0
    kept, rejects = [], []
    for c in chapters:
        if total[c.reader_id] < min_seconds:
            rejects.append(Reject(c.id, "select", "min_seconds_per_reader",
                                  f"reader {c.reader_id} has {total[c.reader_id]:.0f} s < {min_seconds:.0f} s", c.url))
        else:
            kept.append(c)
    return kept, rejects


def expected_seconds(size_bytes: int, kbps: int) -> float:
    """The playing time of `size_bytes` of a constant-bitrate stream at `kbps` kb/s."""
    return size_bytes * 8 / (kbps * 1000.0)


def seconds_agree(seconds: float, playtime_s: Optional[float], tolerance: float) -> bool:
    """`seconds` is the playtime within `tolerance` (relative, at least 2 s); no playtime: nothing to check."""
    return not playtime_s or abs(seconds - playtime_s) <= max(2.0, tolerance * playtime_s)


def duration_ok(size_bytes: int, playtime_s: Optional[float], kbps: int, tolerance: float) -> bool:
    """A constant-bitrate MP3's size agrees with its playtime within `tolerance` (relative, at least 2 s)."""
    return seconds_agree(expected_seconds(size_bytes, kbps), playtime_s, tolerance)


def audio_relpath(ch: Chapter) -> str:
    """`audio/<reader>/<book>-<section>.mp3`, every part sanitized (the ids are plain integers already: see
    `plain_id`; sanitizing keeps a path safe even for a Chapter built elsewhere)."""
    return "/".join(("audio", safe_name(ch.reader_id), f"{safe_name(ch.book_id)}-{ch.section_number:03d}.mp3"))
