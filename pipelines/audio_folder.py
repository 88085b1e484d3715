"""`--audio-dir`: a folder laid out `<speaker>/<files>` (the Keras example's layout) read as manifest records.

Every file under the folder becomes a record or a skip with a reason, never dropped in silence: a file
with no speaker folder above it, a hidden file or folder, a name that is not UTF-8, something that is not
a regular file, a broken link, an extension that is not audio. Nested folders under a speaker folder are
allowed (the speaker is the first folder). Symbolic links are followed once: a link back to a folder
already visited is skipped (`symlink_loop`), so a loop can never hang the listing. No Beam: the caller
lists remote folders (gs://) and passes the listing in.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from pipelines.manifest import ManifestError, ManifestRecord, path_scheme
from pipelines.schema import safe_name

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .mp3 .flac .ogg .oga .opus .webm .m4a .mp4 .aac .wma .aiff .aif .mka .amr .au".split())


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file (or a whole folder) under --audio-dir that is not a record: `reason` is a short code."""

    path: str  # relative to the folder, printable (undecodable bytes escaped)
    reason: str
    message: str


def printable(rel: str) -> str:
    """A relative path whose undecodable bytes (surrogate escapes) are shown as \\xNN."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", "backslashreplace")


def walk(root: str) -> Iterator[Tuple[str, Optional[Skipped]]]:
    """(relative path, None) of every regular file under `root` in sorted order, or (relative path, Skipped)
    for what cannot be a record. Links are followed; a folder reached twice (a loop) is skipped."""
    seen = set()

    def visit(folder: str, rel: str) -> Iterator[Tuple[str, Optional[Skipped]]]:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            yield rel, Skipped(printable(rel), "symlink_loop", "a link to a folder already listed (a loop): skipped")
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            yield rel, Skipped(printable(rel), "unreadable_folder", exc.strerror or str(exc))
            return
        for name in names:
            path, child = os.path.join(folder, name), (f"{rel}/{name}" if rel else name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                yield child, Skipped(printable(child), "broken_link", "a link to nothing")
                continue
            except OSError as exc:
                yield child, Skipped(printable(child), "unreadable_file", exc.strerror or str(exc))
                continue
            if name.startswith("."):
                kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
                yield child, Skipped(printable(child), "hidden", f"a hidden {kind} (name starts with a dot): skipped")
            elif stat.S_ISDIR(st.st_mode):
                yield from visit(path, child)
            elif not stat.S_ISREG(st.st_mode):
                yield child, Skipped(printable(child), "not_a_file", "not a regular file (a FIFO, socket or device)")
            else:
                yield child, None

    yield from visit(root, "")


def record_id(speaker: str, rel: str) -> str:
    """`local-<speaker>-<path inside the speaker folder>`, both made file-name safe."""
    return "local-" + safe_name(speaker) + "-" + safe_name(rel.split("/", 1)[1], 120)


def records_from_audio_dir(root: str, list_files: Optional[Callable[[str], Iterable[str]]] = None
                           ) -> Tuple[List[ManifestRecord], List[Skipped]]:
    """Records for `root/<speaker>/<files>` with paths relative to `root`, and everything else under it as
    Skipped. `list_files(root)` gives the relative paths of a remote folder (all regular files there)."""
    records: List[ManifestRecord] = []
    skipped: List[Skipped] = []
    remote = path_scheme(root) is not None
    root = root.rstrip("/") if remote else os.path.abspath(root)
    listing = ((rel, None) for rel in sorted(list_files(root))) if list_files else walk(root)
    ids = {}
    for rel, skip in listing:
        rel = rel.replace(os.sep, "/")
        if skip is not None:
            skipped.append(skip)
            continue
        shown = printable(rel)
        if shown != rel:
            skipped.append(Skipped(shown, "undecodable_name", "the file name is not UTF-8; rename it"))
            continue
        parts = rel.split("/")
        ext = posixpath.splitext(rel)[1].lower()
        if ext not in AUDIO_EXTENSIONS:
            skipped.append(Skipped(rel, "not_audio", f"not an audio file extension ({ext or 'none'})"))
            continue
        if len(parts) < 2:
            skipped.append(Skipped(rel, "no_speaker_folder",
                                   "an audio file directly in --audio-dir: put each speaker's files in a folder "
                                   "named after the speaker (<speaker>/<files>)"))
            continue
        rec_id = record_id(parts[0], rel)
        if rec_id in ids:
            skipped.append(Skipped(rel, "duplicate_id", f"its id {rec_id} is already taken by {ids[rec_id]} "
                                                        "(names that differ only in characters ids cannot hold)"))
            continue
        try:
            records.append(ManifestRecord(id=rec_id, path=rel, speaker=f"local:{parts[0]}", speaker_name=parts[0],
                                          recording=rec_id, group=parts[0], source="local"))
        except ManifestError as exc:
            skipped.append(Skipped(rel, exc.reason, exc.message))
            continue
        ids[rec_id] = rel
    return records, skipped
