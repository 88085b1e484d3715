"""What every scraper CLI (`python -m scrapers.librivox`, `python -m scrapers.youtube`) shares: argparse
types and checks, and `finish_config`, the end of each CLI's parse_config (refuse an --output that holds
another scrape, set up logging with pipelines.logs).

Every bad input is an argparse error (one line, exit status 2) before any request.
"""
from __future__ import annotations

import argparse
import os
import urllib.parse
from typing import TypeVar

from pipelines import arguments, logs
from scrapers.output import ScrapeConfig, config_conflict

C = TypeVar("C", bound=ScrapeConfig)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def add_limit_flags(group) -> None:
    """The flags that bound every request, the same in every scraper (scrapers/streaming.py, http.py)."""
    group.add_argument("--timeout", type=positive_float, default=30.0,
                       help="whole-request deadline in seconds: a page or API answer must be complete, and a "
                            "download must have started (headers), within it; also the limit for one silent read")
    group.add_argument("--min-rate", type=non_negative_float, default=1.0, metavar="KB_PER_S",
                       help="a download receiving less than this (averaged over --timeout seconds) is cut and "
                            "resumed by the retries, then fails as 'timeout'; 0: no minimum")
    group.add_argument("--max-retry-after", type=non_negative_float, default=120.0, metavar="SECONDS",
                       help="wait at most this long when a server answers 429/503 with Retry-After; a longer wait "
                            "fails the request (reason rate_limited) instead of sleeping")
    group.add_argument("--max-page-mb", type=positive_float, default=50.0,
                       help="refuse a page or API answer larger than this, counted after decompression "
                            "(reason too_large)")


HelpFormatter = arguments.HelpFormatter  # defaults in --help, docstrings as written, old spellings hidden


def command_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A scraper's parser (pipelines.arguments): the package docstring's first paragraph as the description,
    the rest (examples, outputs, exit status) as the epilog; no abbreviated flags."""
    return arguments.command_parser(prog, doc)


def add_output_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """--output (old spelling --out; the dest stays `out`), required, as every scraper takes it."""
    arguments.flag(parser, "--output", "--out", dest="out", required=True, metavar="OUT", help=help)


def check_base_url(parser: argparse.ArgumentParser, url: str) -> str:
    """`url` without a trailing slash; a one-line argparse error unless it is an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--base-url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def check_out_folder(parser: argparse.ArgumentParser, out: str) -> None:
    """A one-line argparse error when --output exists and is not a folder."""
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--output {out} is not a folder")


def finish_config(parser: argparse.ArgumentParser, cfg: C, verbose: bool) -> C:
    """The end of a CLI's parse_config: refuse an --output that holds another scrape (argparse error), set up
    logging (pipelines.logs.setup), return `cfg`."""
    conflict = config_conflict(cfg.out, cfg)
    if conflict:
        parser.error(conflict)
    logs.setup(verbose)
    return cfg


def add_audit_flags(parser: argparse.ArgumentParser, unit: str) -> None:
    """--audit-model and its bounds (scrapers/early_audit.py): the same in every scraper."""
    g = parser.add_argument_group("acoustic audit (README, The acoustic audit)")
    g.add_argument("--audit-model", default=None,
                   help=f"an export of trainer.task: check each download with the builder's acoustic audit and stop "
                        f"downloading a {unit} whose first downloads fail it (OUT/audit.jsonl)")
    g.add_argument("--audit-first", type=positive_int, default=3,
                   help=f"judge a {unit} after this many audited downloads")
    g.add_argument("--audit-max-failures", type=positive_int, default=2,
                   help=f"stop a {unit} when at least this many of its first --audit-first downloads were rejected")


def check_audit_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One-line argparse errors for the audit flags, before any request (the export is read, not loaded)."""
    if args.audit_max_failures > args.audit_first:
        parser.error("--audit-max-failures must be at most --audit-first")
    if args.audit_model:
        from pipelines.model_info import read_model_info

        try:
            read_model_info(args.audit_model)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--audit-model {args.audit_model} is not an export of trainer.task "
                         f"({type(exc).__name__})")
