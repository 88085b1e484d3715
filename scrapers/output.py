"""What a scrape leaves in its output folder OUT besides audio and manifest.jsonl: scrape.json and the
`Reject` records of rejected.jsonl.

An output folder belongs to one scrape: OUT/scrape.json stores the config and its identity (the settings
that make two runs "the same scrape"); a run with another identity is refused before any request
(`config_conflict`). Nothing is written outside OUT (`inside`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import ClassVar, Dict, Optional, Tuple

CONFIG_JSON = "scrape.json"


class ScrapeConfig:
    """Base of a scraper's Config dataclass: IDENTITY_KEYS name the settings that make two runs the same scrape
    (stored in OUT/scrape.json; another identity in the same --out is refused)."""

    IDENTITY_KEYS: ClassVar[Tuple[str, ...]] = ()

    def identity(self) -> Dict:
        return {k: getattr(self, k) for k in self.IDENTITY_KEYS}


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


def config_conflict(out: str, cfg: ScrapeConfig) -> Optional[str]:
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


def write_config(out: str, cfg: ScrapeConfig, extra: Optional[Dict] = None) -> None:
    """OUT/scrape.json: the identity, every setting of the dataclass `cfg`, and `extra` (e.g. the last summary)."""
    data = {"identity": cfg.identity(), "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                   for k, v in dataclasses.asdict(cfg).items()}}
    data.update(extra or {})
    tmp = os.path.join(out, CONFIG_JSON + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(out, CONFIG_JSON))
