"""What every scraper CLI and output folder shares: argparse types, rejection records, the run config file.

An output folder belongs to one scrape: OUT/scrape.json stores the config and its identity (the settings
that make two runs "the same scrape"); a run with another identity is refused before any request.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import urllib.parse
from typing import ClassVar, Dict, Optional, Tuple

CONFIG_JSON = "scrape.json"


class ScrapeConfig:
    """Base of a scraper's Config dataclass: IDENTITY_KEYS name the settings that make two runs the same scrape
    (stored in OUT/scrape.json; another identity in the same --out is refused)."""

    IDENTITY_KEYS: ClassVar[Tuple[str, ...]] = ()

    def identity(self) -> Dict:
        return {k: getattr(self, k) for k in self.IDENTITY_KEYS}


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in --help, and the package docstring kept as written."""


def check_base_url(parser: argparse.ArgumentParser, url: str) -> str:
    """`url` without a trailing slash; a one-line argparse error unless it is an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--base-url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Reject:
    """One line of OUT/rejected.jsonl: what was skipped or failed, at which stage and why."""

    id: str
    stage: str
    reason: str
    message: str
    url: str = ""

    def to_json(self) -> Dict:
        return dataclasses.asdict(self)


def inside(root: str, path: str) -> bool:
    """`path` lies under `root` once symlinks and `..` are resolved."""
    root, path = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([root, path]) == root


def config_conflict(out: str, cfg) -> Optional[str]:
    """A one-line reason when OUT/scrape.json belongs to a scrape with another `cfg.identity()`, else None."""
    path = os.path.join(out, CONFIG_JSON)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f).get("identity", {})
    except (OSError, ValueError, AttributeError):
        return f"{path} is unreadable; use another --out"
    diffs = [f"{k}: {stored.get(k)!r} != {v!r}" for k, v in cfg.identity().items() if stored.get(k) != v]
    if diffs:
        return f"--out {out} holds a scrape with another config ({'; '.join(diffs)}); use another --out"
    return None


def check_out_folder(parser: argparse.ArgumentParser, out: str) -> None:
    """A one-line argparse error when --out exists and is not a folder."""
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--out {out} is not a folder")


def finish_config(parser: argparse.ArgumentParser, cfg, verbose: bool):
    """The end of a CLI's parse_config: refuse an --out that holds another scrape (argparse error), set up
    logging, return `cfg`."""
    conflict = config_conflict(cfg.out, cfg)
    if conflict:
        parser.error(conflict)
    setup_logging(verbose)
    return cfg


def write_config(out: str, cfg, extra: Optional[Dict] = None) -> None:
    """OUT/scrape.json: the identity, every setting of the dataclass `cfg`, and `extra` (e.g. the last summary)."""
    data = {"identity": cfg.identity(), "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                   for k, v in dataclasses.asdict(cfg).items()}}
    data.update(extra or {})
    tmp = os.path.join(out, CONFIG_JSON + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(out, CONFIG_JSON))
