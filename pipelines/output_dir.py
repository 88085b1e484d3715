"""The builder's output folder: what it may hold, what the builder may delete, and one build at a time.

The builder only ever deletes what it writes itself (shards, dataset.json, speakers.tsv, recordings.jsonl,
audit.jsonl, the TFDS metadata dataset_info.json and features.json, errors/, report/ with README.md, its PNGs,
index.html, audio/ and provenance.json, its temp folder, the dataset card README.md, sources.tsv and
manifest.jsonl: the copy of --manifest or the manifest it derives from --audio-dir). It refuses an output folder
that holds anything
else, that overlaps its inputs in any direction (equal to, inside or around the audio folder; holding the
manifest), or that another build is writing. Runs before the Beam job, on the submitting machine; files
through Beam's FileSystems (local or gs://).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterator, List, Optional

from apache_beam.io.filesystems import FileSystems

from pipelines import audio_folder, schema
from pipelines.config import BuildConfig
from pipelines.dataset_meta import DatasetError, DatasetMeta
from pipelines.finalize import PREREJECTED_JSON
from pipelines.manifest import path_scheme, to_jsonl
from pipelines.paths import is_remote, join
from pipelines.rejection import Rejection

DERIVED_MANIFEST = schema.MANIFEST_JSONL  # OUT/manifest.jsonl: derived for --audio-dir, else a copy of --manifest
# Names common outside datasets too: the builder's only in a folder a build wrote (`built_here`).
COMMON_NAMES = (schema.CARD_MD, schema.SOURCES_TSV, schema.MANIFEST_JSONL)
LOCK_FILE = ".lock"
OWNED_FILES = (schema.DATASET_JSON, schema.SPEAKERS_TSV, schema.AUDIT_JSONL, schema.RECORDINGS_JSONL,
               schema.TFDS_INFO_JSON,
               schema.TFDS_FEATURES_JSON, LOCK_FILE)
OWNED_FOLDERS = (schema.ERRORS_DIR, schema.REPORT_DIR, schema.TEMP_DIR)
LEFT_ALONE = (schema.TRANSFORM_DIR,)  # written by pipelines.preprocess; its digest check marks it stale


class OutputError(ValueError):
    """An output folder the builder must not write into; the message says why, in one line."""


def owned(name: str, config: BuildConfig, build_trace: bool = True) -> bool:
    """Whether a top-level entry of the output folder is one the builder writes (and may delete). README.md,
    sources.tsv and manifest.jsonl count only beside a `build_trace` (see `built_here`): a folder holding just a
    user's README.md is not the builder's to clear."""
    if schema.SHARD_RE.match(name) or name in OWNED_FILES or name in OWNED_FOLDERS:
        return True
    if name in COMMON_NAMES:
        return build_trace or (name == DERIVED_MANIFEST and bool(config.audio_dir))
    return False


def built_here(entries: List[str]) -> bool:
    """Whether a folder's top-level names show a build wrote it: dataset.json, a shard or the temp folder
    (the card and the manifest copy are written after dataset.json; a failed build leaves its temp folder)."""
    return any(n in (schema.DATASET_JSON, schema.TEMP_DIR) or schema.SHARD_RE.match(n) for n in entries)


def _norm(path: str) -> str:
    """A comparable form: the real path locally (links and `..` resolved), the URL without a trailing slash."""
    return path.rstrip("/") if is_remote(path) else os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    """`path` is `folder` or lies under it (after _norm)."""
    if is_remote(path) != is_remote(folder):
        return False
    if is_remote(path):
        return path == folder or path.startswith(folder + "/")
    return os.path.commonpath([path, folder]) == folder


def overlap(out: str, config: BuildConfig) -> Optional[str]:
    """Why --output overlaps the inputs (in any direction), or None."""
    o = _norm(out)
    if config.audio_dir:
        a = _norm(config.audio_dir)
        if _inside(o, a):
            return (f"--output {out} is or lies inside --audio-dir {config.audio_dir}: the builder would read its "
                    "own output as audio; choose a folder outside it")
        if _inside(a, o):
            return f"--audio-dir {config.audio_dir} lies inside --output {out}: choose an output folder of its own"
    if config.manifest and _inside(_norm(config.manifest), o):
        return f"--output {out} holds the manifest {config.manifest}: choose an output folder of its own"
    return None


def _entries(out: str) -> List[str]:
    """Top-level names in the output folder (local), or the first path component of every object (remote)."""
    if not is_remote(out):
        return sorted(os.listdir(out)) if os.path.isdir(out) else []
    base = out.rstrip("/") + "/"
    found = FileSystems.match([base + "**"])[0].metadata_list
    return sorted({m.path[len(base):].split("/", 1)[0] for m in found if m.path.startswith(base)})


def _missing_parent_is_a_file(out: str) -> Optional[str]:
    path = os.path.abspath(out)
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return path if path and not os.path.isdir(path) else None


def check_output(out: str, config: BuildConfig, overwrite: bool) -> None:
    """OutputError unless the builder may write its dataset into `out`."""
    problem = overlap(out, config)
    if problem:
        raise OutputError(problem)
    if not is_remote(out):
        if os.path.exists(out) and not os.path.isdir(out):
            raise OutputError(f"--output {out} is a file, not a folder")
        blocker = _missing_parent_is_a_file(out)
        if blocker:
            raise OutputError(f"--output {out}: {blocker} is a file, not a folder")
    entries = _entries(out)
    ours = built_here(entries)
    foreign = [n for n in entries if not owned(n, config, ours) and n not in LEFT_ALONE]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"--output {out} holds files the builder did not write ({shown}); it never deletes "
                          "those: choose an empty or new folder")
    meta_path = join(out, schema.DATASET_JSON)
    if schema.DATASET_JSON in entries and not overwrite:
        with FileSystems.open(meta_path) as f:
            text = f.read().decode("utf-8", "replace")
        try:
            diff = DatasetMeta.from_text(text).config.differences(config)
        except DatasetError:
            diff = (schema.DATASET_JSON,)
        if diff:
            raise OutputError(f"--output {out} holds a dataset built with another configuration (differs in: "
                              f"{', '.join(diff)}); pass --overwrite to replace it, or choose another --output")


@contextlib.contextmanager
def build_lock(out: str) -> Iterator[None]:
    """Hold OUT/.lock for the whole build (local outputs: an exclusive flock that dies with the process);
    OutputError at once when another build holds it. Remote outputs are not locked."""
    if is_remote(out):
        yield
        return
    import fcntl

    os.makedirs(out, exist_ok=True)
    handle = open(os.path.join(out, LOCK_FILE), "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"--output {out} is being written by another build (it holds {LOCK_FILE}); "
                              "wait for it to finish or choose another --output") from None
        yield
    finally:
        handle.close()  # closing releases the lock


def remove_owned(out: str, config: BuildConfig, keep_lock: bool = True) -> None:
    """Delete what the builder writes in `out`, and nothing else."""
    doomed: List[str] = []
    entries = _entries(out)
    ours = built_here(entries)
    for name in entries:
        if not owned(name, config, ours) or (keep_lock and name == LOCK_FILE):
            continue
        path = join(out, name)
        if name in OWNED_FOLDERS:
            doomed += [m.path for m in FileSystems.match([join(path, "**")])[0].metadata_list]
            if not is_remote(out):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
                continue
        else:
            doomed.append(path)
    doomed = [p for p in doomed if FileSystems.exists(p)]
    if doomed:
        FileSystems.delete(doomed)


def prepare_output(out: str, config: BuildConfig) -> str:
    """Clear what an earlier build of this folder left and return the manifest to read."""
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
    remove_owned(out, config)
    if config.manifest:
        return config.manifest
    return write_derived_manifest(out, config.audio_dir)


def write_derived_manifest(out: str, root: str) -> str:
    """OUT/manifest.jsonl for the folder `root` (written whole or not at all), and every file that cannot be
    a record as a pre-rejection."""
    if path_scheme(root):
        base = root.rstrip("/")
        listing = [m.path[len(base) + 1:] for m in FileSystems.match([base + "/**"])[0].metadata_list]
        records, skipped = audio_folder.records_from_audio_dir(root, lambda _r: listing)
    else:
        records, skipped = audio_folder.records_from_audio_dir(root)
    absolute = root if path_scheme(root) else os.path.abspath(root)
    text = to_jsonl(r.resolved(absolute) for r in records).encode("utf-8")
    derived = join(out, DERIVED_MANIFEST)
    if is_remote(out):
        with FileSystems.create(derived) as f:  # an object appears whole when closed
            f.write(text)
    else:
        os.makedirs(os.path.join(out, schema.TEMP_DIR), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="manifest-", dir=os.path.join(out, schema.TEMP_DIR))
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.replace(tmp, derived)
    pre = [Rejection(id="", path=join(root, s.path), stage="manifest", reason=s.reason, message=s.message)
           for s in skipped]
    if pre:
        with FileSystems.create(join(out, schema.TEMP_DIR, PREREJECTED_JSON)) as f:
            f.write(json.dumps([r.to_json() for r in pre]).encode("utf-8"))
    return derived
