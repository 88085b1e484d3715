"""Manifest records (DESIGN.md 2.1): parse and validate JSONL lines, or derive them from a folder.

Plain functions; the Beam wrappers live in transforms.py.
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Dict, Iterable, Iterator, List, Tuple

from pipelines.schema import MANIFEST_FIELDS, MANIFEST_REQUIRED, MANIFEST_STRING_FIELDS, safe_name

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .mp3 .flac .ogg .oga .opus .webm .m4a .mp4 .aac .wma .aiff .aif .mka .amr .au".split())


class ManifestError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _is_remote(path: str) -> bool:
    return "://" in path


def resolve_path(path: str, base_dir: str) -> str:
    """A manifest path is absolute, `gs://…`, or relative to the manifest's folder."""
    if _is_remote(path) or os.path.isabs(path):
        return path
    if _is_remote(base_dir):
        return posixpath.join(base_dir, path)
    return os.path.normpath(os.path.join(base_dir, path))


def parse_line(line: str, base_dir: str) -> Dict:
    """One manifest line to a normalized record, or ManifestError with a reason."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError("invalid_json", f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ManifestError("invalid_json", f"a JSON {type(data).__name__}, not an object")
    missing = [f for f in MANIFEST_REQUIRED if not isinstance(data.get(f), str) or not data.get(f).strip()]
    if missing:
        raise ManifestError("missing_field", f"missing or empty required field(s): {', '.join(missing)}")
    record = {f: data[f] for f in MANIFEST_FIELDS if data.get(f) is not None}
    for f in MANIFEST_STRING_FIELDS:
        if f in record and not isinstance(record[f], str):
            record[f] = str(record[f])
    for f in ("duration_s", "bytes"):
        if f in record:
            try:
                record[f] = float(record[f]) if f == "duration_s" else int(record[f])
            except (TypeError, ValueError):
                raise ManifestError("invalid_field", f"{f} is not a number: {record[f]!r}") from None
    record["path"] = resolve_path(record["path"], base_dir)
    record.setdefault("recording", record["id"])
    record.setdefault("speaker_name", record["speaker"].split(":", 1)[-1])
    record.setdefault("group", "")
    record.setdefault("source", record["speaker"].split(":", 1)[0] if ":" in record["speaker"] else "local")
    record.setdefault("license", "")
    record.setdefault("language", "")
    return record


def iter_audio_dir(root: str, list_files=None) -> Iterator[Tuple[str, str]]:
    """(speaker folder, relative path) of every non-hidden file under `root/<speaker>/…`, sorted."""
    if list_files is None:
        def list_files(r):
            for dirpath, dirnames, filenames in os.walk(r):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        yield os.path.relpath(os.path.join(dirpath, name), r)
    for rel in sorted(list_files(root)):
        parts = rel.replace(os.sep, "/").split("/")
        if len(parts) < 2:
            continue  # files directly under root have no speaker folder
        yield parts[0], "/".join(parts)


def records_from_audio_dir(root: str, list_files=None) -> Tuple[List[Dict], List[Tuple[str, str]]]:
    """Manifest records for `root/<speaker>/<files>` (nested folders allowed), plus the files skipped
    as (relative path, reason): files directly under root, and non-audio extensions."""
    records, skipped = [], []
    root = root.rstrip("/") if _is_remote(root) else os.path.abspath(root)
    for speaker, rel in iter_audio_dir(root, list_files):
        ext = posixpath.splitext(rel)[1].lower()
        if ext not in AUDIO_EXTENSIONS:
            skipped.append((rel, f"not an audio file extension ({ext or 'none'})"))
            continue
        rec_id = "local-" + safe_name(speaker) + "-" + safe_name(rel.split("/", 1)[1], 120)
        records.append({
            "id": rec_id, "path": rel, "speaker": f"local:{speaker}", "speaker_name": speaker,
            "recording": rec_id, "group": speaker, "source": "local", "license": "", "language": "",
        })
    return records, skipped


def to_jsonl(records: Iterable[Dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)
