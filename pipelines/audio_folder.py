"""`--audio-dir`: a folder laid out `<speaker>/<files>` (the Keras example's layout) read as manifest records.

Nested folders under a speaker folder are allowed; the speaker is the first folder. Files that cannot
be records (no speaker folder, not an audio extension) are returned with a reason, never dropped
silently. No Beam: the caller lists remote folders (gs://) and passes the listing in.
"""
from __future__ import annotations

import os
import posixpath
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from pipelines.manifest import ManifestError, ManifestRecord, path_scheme
from pipelines.schema import safe_name

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .mp3 .flac .ogg .oga .opus .webm .m4a .mp4 .aac .wma .aiff .aif .mka .amr .au".split())


def _walk(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def iter_audio_dir(root: str, list_files: Optional[Callable[[str], Iterable[str]]] = None
                   ) -> Iterator[Tuple[str, str]]:
    """(speaker folder, relative path) of every non-hidden file under `root/<speaker>/…`, sorted."""
    for rel in sorted((list_files or _walk)(root)):
        parts = rel.replace(os.sep, "/").split("/")
        if len(parts) < 2:
            continue  # files directly under root have no speaker folder
        yield parts[0], "/".join(parts)


def record_id(speaker: str, rel: str) -> str:
    """`local-<speaker>-<path inside the speaker folder>`, both made file-name safe."""
    return "local-" + safe_name(speaker) + "-" + safe_name(rel.split("/", 1)[1], 120)


def records_from_audio_dir(root: str, list_files: Optional[Callable[[str], Iterable[str]]] = None
                           ) -> Tuple[List[ManifestRecord], List[Tuple[str, str]]]:
    """Records for `root/<speaker>/<files>` with paths relative to `root`, plus the files skipped as
    (relative path, reason)."""
    records, skipped = [], []
    root = root.rstrip("/") if path_scheme(root) else os.path.abspath(root)
    for speaker, rel in iter_audio_dir(root, list_files):
        ext = posixpath.splitext(rel)[1].lower()
        if ext not in AUDIO_EXTENSIONS:
            skipped.append((rel, f"not an audio file extension ({ext or 'none'})"))
            continue
        rec_id = record_id(speaker, rel)
        try:
            records.append(ManifestRecord(id=rec_id, path=rel, speaker=f"local:{speaker}", speaker_name=speaker,
                                          recording=rec_id, group=speaker, source="local"))
        except ManifestError as exc:
            skipped.append((rel, exc.message))
    return records, skipped
