"""CLI: python -m scrapers.youtube --output DIR (--channel URL | --playlist URL | --search QUERY | --urls FILE) …"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Optional, Sequence

import scrapers.youtube as package
from pipelines.arguments import prog_name
from scrapers.cli import (add_audit_flags, add_limit_flags, add_output_flag, check_audit_flags, check_base_url,
                          check_out_folder, command_parser, finish_config, non_negative_float, positive_int)
from scrapers.http import FetchError
from scrapers.output import OutputBusy
from scrapers.youtube import download, pages, scrape

PROG = "python -m scrapers.youtube"


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, package.__doc__)
    add_output_flag(p, "output folder: audio/, manifest.jsonl, rejected.jsonl, download-archive.txt, scrape.json")
    p.add_argument("--base-url", default=scrape.DEFAULT_BASE_URL,
                   help="YouTube or a mirror/test server serving the same paths (its host joins the allow-list)")
    src = p.add_argument_group("source (exactly one)").add_mutually_exclusive_group(required=True)
    src.add_argument("--channel", metavar="URL", help="a channel (https://www.youtube.com/@HANDLE or /channel/UC...): "
                                                      "its Videos tab")
    src.add_argument("--playlist", metavar="URL", help="https://www.youtube.com/playlist?list=ID")
    src.add_argument("--search", metavar="QUERY", help="search results (scrolled until --max-videos)")
    src.add_argument("--urls", metavar="FILE", help="video URLs, one per line; '# speaker: NAME' labels the "
                                                    "URLs that follow, other '#' lines are comments")
    p.add_argument("--speaker", metavar="NAME", help="label every video with this speaker (key youtube:<NAME "
                                                     "sanitized>) instead of youtube:<channelId>")
    p.add_argument("--lister", choices=("browser", "ytdlp"), default="browser",
                   help="list with headless Chromium (scrolling) or with yt-dlp's extract_flat")
    f = p.add_argument_group("filters (before download)")
    f.add_argument("--license", choices=("cc", "any"), default="cc",
                   help="cc: only videos YouTube marks Creative Commons; any: every licence (recorded per line)")
    f.add_argument("--min-duration", type=non_negative_float, default=60.0, help="seconds")
    f.add_argument("--max-duration", type=non_negative_float, default=3 * 3600.0, help="seconds")
    f.add_argument("--include", metavar="REGEX", help="keep only titles matching (case-insensitive)")
    f.add_argument("--exclude", metavar="REGEX", default=scrape.DEFAULT_EXCLUDE,
                   help="skip titles matching (case-insensitive; '' for none); the default skips likely multi-"
                        "speaker videos")
    f.add_argument("--max-videos", type=positive_int, help="list at most this many videos")
    f.add_argument("--max-seconds-per-speaker", type=non_negative_float,
                   help="stop taking a speaker's videos past this much audio (counts earlier runs)")
    n = p.add_argument_group("network")
    n.add_argument("--sleep", type=non_negative_float, default=5.0,
                   help="yt-dlp sleep_interval: seconds before each download (random up to --max-sleep)")
    n.add_argument("--max-sleep", type=non_negative_float, default=15.0, help="yt-dlp max_sleep_interval")
    n.add_argument("--sleep-requests", type=non_negative_float, default=1.0,
                   help="yt-dlp sleep_interval_requests: seconds between metadata requests")
    n.add_argument("--rate-limit", type=non_negative_float, metavar="KB_PER_S", help="download rate limit")
    n.add_argument("--min-interval", type=non_negative_float, default=1.0,
                   help="seconds between the scraper's own requests to one host (robots.txt)")
    n.add_argument("--retries", type=int, default=5, help="retries per request / download")
    add_limit_flags(n)
    n.add_argument("--scroll-wait", type=non_negative_float, default=2.0,
                   help="seconds to wait for new items after each scroll")
    n.add_argument("--patience", type=positive_int, default=3, help="stop scrolling after this many scrolls "
                                                                    "in a row bring nothing new")
    n.add_argument("--max-file-mb", type=non_negative_float, default=2048.0,
                   help="refuse larger files (the bytes received count, whatever Content-Length says)")
    n.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_audit_flags(p, "channel or speaker")
    p.add_argument("--dry-run", action="store_true", help="print one JSON object per video that would be "
                                                          "downloaded (stdout); download nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return p


def parse_config(argv: Optional[Sequence[str]] = None) -> scrape.Config:
    """Parse and validate; every bad input is an argparse error (exit 2) before any request."""
    parser = build_parser()
    a = parser.parse_args(argv)
    base_url = check_base_url(parser, a.base_url)
    for flag, pattern in (("--include", a.include), ("--exclude", a.exclude)):
        try:
            re.compile(pattern or "")
        except re.error as exc:
            parser.error(f"{flag} is not a valid regular expression: {exc}")
    if a.min_duration > a.max_duration:
        parser.error("--min-duration is larger than --max-duration")
    if a.rate_limit is not None and 0 < a.rate_limit < a.min_rate:
        parser.error(f"--rate-limit {a.rate_limit:g} KB/s is below --min-rate {a.min_rate:g} KB/s: every download "
                     "would be cut as too slow")
    if a.search is not None and not a.search.strip():
        parser.error("--search needs a query")
    channel = playlist = None
    videos = ()
    try:
        if a.channel:
            channel = scrape.channel_videos_url(a.channel, base_url)
        if a.playlist:
            playlist = scrape.playlist_url(a.playlist, base_url)
        if a.urls:
            videos = tuple(scrape.read_urls_file(a.urls, base_url))
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"--urls: {exc.strerror}: {a.urls}")
    if a.speaker is not None and not a.speaker.strip():
        parser.error("--speaker needs a name")
    check_out_folder(parser, a.out)
    check_audit_flags(parser, a)
    cfg = scrape.Config(
        out=a.out, base_url=base_url, channel=channel, playlist=playlist,
        search=a.search.strip() if a.search else None, videos=videos, speaker=a.speaker, lister=a.lister,
        license=a.license, min_duration=a.min_duration, max_duration=a.max_duration, include=a.include or None,
        exclude=a.exclude or None, max_videos=a.max_videos, max_seconds_per_speaker=a.max_seconds_per_speaker,
        dry_run=a.dry_run, sleep=a.sleep, max_sleep=a.max_sleep, sleep_requests=a.sleep_requests,
        rate_limit_kb=a.rate_limit, retries=a.retries, timeout=a.timeout, min_interval=a.min_interval,
        scroll_wait=a.scroll_wait, patience=a.patience, max_file_mb=a.max_file_mb, min_rate_kb=a.min_rate,
        max_retry_after=a.max_retry_after, max_page_mb=a.max_page_mb, progress=not a.no_progress,
        audit_model=a.audit_model, audit_first=a.audit_first, audit_max_failures=a.audit_max_failures)
    return finish_config(parser, cfg, a.verbose)


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(argv)
    try:
        summary = scrape.run(cfg, note=lambda s: print(s, file=sys.stderr))
    except OutputBusy as exc:  # another run writes into --output
        print(f"{prog_name(PROG)}: error: {exc}", file=sys.stderr)
        return 2
    except (FetchError, pages.PageError) as exc:
        if exc.reason == "rate_limited":  # Retry-After beyond --max-retry-after: stop as on a 429
            print(f"{prog_name(PROG)}: stopped: {exc.message}; wait before rerunning, or raise --max-retry-after", file=sys.stderr)
            return 3
        print(f"{prog_name(PROG)}: error: {exc.message}", file=sys.stderr)
        return 1
    except download.Blocked as exc:  # while listing
        print(f"{prog_name(PROG)}: error: YouTube refused the listing ({exc}); try again later", file=sys.stderr)
        return 3
    if summary["stopped"]:
        print(f"{prog_name(PROG)}: stopped: {summary['stopped']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
