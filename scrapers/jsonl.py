"""Append-only JSON Lines files (manifest.jsonl, rejected.jsonl, api_pages.jsonl) that survive being killed.

Each line is flushed and fsync'ed as it is written; on reopening, a torn last line (the process was
killed mid-write) is cut off, and the keys already written are known, so a rerun skips them. What a
manifest line holds is pipelines.manifest's business (`ManifestRecord.to_json()`); this module only
stores JSON objects. `json_depth` measures how deeply parsed JSON from the web nests (iteratively), so the
parsers can refuse a `[[[[...]]]]` bomb before any recursive code walks it.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Hashable, List, Set


def json_depth(obj) -> int:
    """How deeply `obj` nests lists and objects (iterative: any depth is measured without recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return deepest


def read_jsonl(path: str) -> List[Dict]:
    """Every complete, valid line of a JSONL file (a torn last line is ignored)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                break
    return out


class JsonlAppender:
    """Append-only JSONL with idempotent `append`: a record whose key was already written is skipped."""

    def __init__(self, path: str, key: Callable[[Dict], Hashable] = lambda r: r["id"]):
        self.path, self.key = path, key
        self.keys: Set[Hashable] = set()
        good_end = 0
        if os.path.exists(path):
            with open(path, "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        self.keys.add(key(json.loads(raw)))
                    except (json.JSONDecodeError, KeyError, TypeError):
                        break
                    good_end += len(raw)
            if good_end != os.path.getsize(path):
                with open(path, "r+b") as f:  # drop a torn tail left by a killed run
                    f.truncate(good_end)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._f = open(path, "ab")

    def __contains__(self, key: Hashable) -> bool:
        return key in self.keys

    def append(self, record: Dict) -> bool:
        """Write `record` unless its key is present; True when written."""
        k = self.key(record)
        if k in self.keys:
            return False
        self._f.write((json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())
        self.keys.add(k)
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ids_done(path: str) -> Set[str]:
    return {r["id"] for r in read_jsonl(path) if isinstance(r, dict) and "id" in r}


def drop_resolved(path: str, done_ids: Set[str], stage: str = "download") -> int:
    """Rewrite the rejection file at `path` without the `stage` records of ids that are now done (a failed
    download that a later run completed), atomically; returns how many records were dropped."""
    if not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path, "rb") as f:
        for raw in f:
            record = json.loads(raw)
            if record.get("stage") == stage and record.get("id") in done_ids:
                dropped += 1
            else:
                kept.append(raw)
    if dropped:
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped
