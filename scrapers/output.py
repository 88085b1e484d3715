"""What a scrape leaves in its output folder OUT besides audio and manifest.jsonl: scrape.json, the
`Reject` records of rejected.jsonl, and OUT/.lock.

An output folder belongs to one scrape: OUT/scrape.json stores the config and its identity (the settings
that make two runs "the same scrape"); a run with another identity is refused before any request
(`config_conflict`). One run at a time: a run holds an exclusive flock on OUT/.lock (`exclusive`), and a
second run into the same OUT stops before any request (`OutputBusy`). Nothing is written outside OUT (`inside`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from typing import ClassVar, Dict, Iterator, Optional, Tuple

CONFIG_JSON = "scrape.json"
LOCK_FILE = ".lock"


class ScrapeConfig:
    """Base of a scraper's Config dataclass: IDENTITY_KEYS name the settings that make two runs the same scrape
    (stored in OUT/scrape.json; another identity in the same --output is refused)."""

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
        return f"{path} is unreadable; use another --output"
    diffs = [f"{k}: {stored.get(k)!r} != {v!r}" for k, v in cfg.identity().items() if stored.get(k) != v]
    if diffs:
        return f"--output {out} holds a scrape with another config ({'; '.join(diffs)}); use another --output"
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


class OutputBusy(Exception):
    """Another run holds OUT/.lock; the message is one line for the CLI."""


@contextlib.contextmanager
def exclusive(out: str) -> Iterator[None]:
    """Hold an exclusive flock on OUT/.lock while the block runs; OutputBusy at once when another process holds it.

    flock belongs to the open file, so the lock ends with the process however it ends (a SIGKILLed run leaves no
    stale lock, only the file). A folder this call created and that still holds nothing but the lock file is
    removed again (a run that failed before writing leaves no trace).
    """
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            raise OutputBusy(f"--output {out} is in use by another scrape{f' (pid {holder})' if holder.isdigit() else ''}; "
                             "wait for it to finish or use another --output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its holder removed meanwhile
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        if created and os.listdir(out) == [LOCK_FILE]:
            os.remove(path)
            os.rmdir(out)
        os.close(fd)
