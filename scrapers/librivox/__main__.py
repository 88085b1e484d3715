"""CLI: python -m scrapers.librivox --output DIR [--base-url URL] [filters] [caps] [--dry-run]."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

import scrapers.librivox as package
from pipelines.arguments import flag, prog_name
from scrapers.cli import (add_audit_flags, add_limit_flags, add_output_flag, check_audit_flags, check_base_url,
                          check_out_folder, command_parser, finish_config, non_negative_float, positive_int)
from scrapers.librivox import api, scrape
from scrapers.librivox.selection import plain_id
from scrapers.output import OutputBusy

PROG = "python -m scrapers.librivox"


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, package.__doc__)
    add_output_flag(p, "output folder: audio/, manifest.jsonl, rejected.jsonl, scrape.json")
    p.add_argument("--base-url", default=scrape.DEFAULT_BASE_URL,
                   help="LibriVox site or mirror (its host joins the allow-list)")
    g = p.add_argument_group("discovery")
    g.add_argument("--language", help="keep books in this language (e.g. English)")
    g.add_argument("--genre", help="API genre filter (a LibriVox genre name)")
    g.add_argument("--since", type=int, help="API `since`: books catalogued after this UNIX time")
    g.add_argument("--author", help="API author filter")
    g.add_argument("--title", help="API title filter")
    g.add_argument("--book-id", action="append", default=[], help="only these book ids (repeatable)")
    g.add_argument("--search", action="store_true",
                   help="discover books with the catalogue's solo search (headless Chromium) instead of API paging")
    g.add_argument("--search-genre-id", type=int, help="genre_id of the search form")
    g.add_argument("--sort-order", choices=("catalog_date", "alpha"), help="sort_order of the search form")
    g.add_argument("--limit", type=positive_int, default=api.DEFAULT_LIMIT, help="books per API page")
    g.add_argument("--offset", type=int, default=0,
                   help="first API offset of a new output folder (a rerun continues paging where the last stopped)")
    g.add_argument("--max-pages", type=positive_int,
                   help="fetch at most this many new API pages in this run (with --search: result pages)")
    s = p.add_argument_group("selection")
    s.add_argument("--quality", type=int, choices=(64, 128), default=64, help="MP3 bitrate to download (kb/s)")
    s.add_argument("--max-readers", type=positive_int, help="at most this many readers")
    s.add_argument("--max-books-per-reader", type=positive_int, help="at most this many books per reader")
    flag(s, "--max-seconds-per-speaker", "--max-seconds-per-reader", dest="max_seconds_per_reader",
         metavar="SECONDS", type=non_negative_float, help="at most this much audio per reader (a LibriVox speaker)")
    flag(s, "--min-seconds-per-speaker", "--min-seconds-per-reader", dest="min_seconds_per_reader",
         metavar="SECONDS", type=non_negative_float, default=0.0, help="drop readers with less audio than this")
    s.add_argument("--exclude-readers", metavar="FILE",
                   help="reader ids to skip, one per line ('123' or 'librivox:123'; '#' comments)")
    s.add_argument("--solo-books-only", action="store_true", help="keep only books read entirely by one reader")
    n = p.add_argument_group("network")
    n.add_argument("--min-interval", type=non_negative_float, default=1.0,
                   help="seconds between requests to one host (plus jitter; robots.txt Crawl-delay wins)")
    flag(n, "--retries", "--max-retries", dest="max_retries", metavar="RETRIES", type=int, default=5,
         help="retries on 429/5xx/timeouts/dropped connections")
    n.add_argument("--backoff", type=non_negative_float, default=1.0, help="first backoff delay in seconds")
    add_limit_flags(n)
    n.add_argument("--duration-tolerance", type=non_negative_float, default=0.15,
                   help="relative size/playtime disagreement allowed (at least 2 s)")
    n.add_argument("--max-file-mb", type=non_negative_float, default=2048.0,
                   help="refuse larger files (the bytes written count, whatever Content-Length says)")
    n.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_audit_flags(p, "reader")
    p.add_argument("--dry-run", action="store_true", help="list what would be downloaded; download nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return p


def read_exclusions(path: str) -> List[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line.split(":", 1)[1] if line.startswith("librivox:") else line)
    return out


def parse_config(argv: Optional[Sequence[str]] = None) -> scrape.Config:
    """Parse and validate; every bad input is an argparse error (exit 2) before any request."""
    parser = build_parser()
    a = parser.parse_args(argv)
    check_base_url(parser, a.base_url)
    language = scrape.canonical(a.language, scrape.LANGUAGES) if a.language else None
    if a.language and language is None:
        parser.error(f"unknown --language {a.language!r} (e.g. English, German, French)")
    genre = scrape.canonical(a.genre, scrape.GENRES) if a.genre else None
    if a.genre and genre is None:
        parser.error(f"unknown --genre {a.genre!r} (a LibriVox genre such as 'Poetry' or 'Science Fiction')")
    bad_ids = [b for b in a.book_id if not plain_id(b)]
    if bad_ids:
        parser.error(f"--book-id must be numeric (plain digits, no leading zero): {bad_ids}")
    if a.offset < 0:
        parser.error("--offset must be >= 0")
    exclude: List[str] = []
    if a.exclude_readers:
        try:
            exclude = read_exclusions(a.exclude_readers)
        except OSError as exc:
            parser.error(f"--exclude-readers: {exc.strerror}: {a.exclude_readers}")
        bad = [r for r in exclude if not plain_id(r)]
        if bad:
            parser.error(f"--exclude-readers: non-numeric reader id(s) {bad[:3]} (plain digits, no leading zero)")
    check_out_folder(parser, a.out)
    check_audit_flags(parser, a)
    cfg = scrape.Config(
        out=a.out, base_url=a.base_url.rstrip("/"), language=language, genre=genre, since=a.since, author=a.author,
        title=a.title, book_ids=tuple(a.book_id), search=a.search, search_genre_id=a.search_genre_id,
        sort_order=a.sort_order, limit=a.limit, offset=a.offset, max_pages=a.max_pages, quality=a.quality,
        max_readers=a.max_readers, max_books_per_reader=a.max_books_per_reader,
        max_seconds_per_reader=a.max_seconds_per_reader, min_seconds_per_reader=a.min_seconds_per_reader,
        exclude_readers=tuple(exclude), solo_books_only=a.solo_books_only, dry_run=a.dry_run,
        duration_tolerance=a.duration_tolerance, min_interval=a.min_interval, max_retries=a.max_retries,
        backoff_base=a.backoff, timeout=a.timeout, max_file_mb=a.max_file_mb, min_rate_kb=a.min_rate,
        max_retry_after=a.max_retry_after, max_page_mb=a.max_page_mb, progress=not a.no_progress,
        audit_model=a.audit_model, audit_first=a.audit_first, audit_max_failures=a.audit_max_failures)
    return finish_config(parser, cfg, a.verbose)


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(argv)
    try:
        summary = scrape.run(cfg)
    except OutputBusy as exc:  # another run writes into --output
        print(f"{prog_name(PROG)}: error: {exc}", file=sys.stderr)
        return 2
    return 1 if summary["failures"] and not summary["chapters_kept"] else 0


if __name__ == "__main__":
    sys.exit(main())
