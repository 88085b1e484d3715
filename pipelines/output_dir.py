"""The builder's output folder: refuse one that holds something else, clear what an earlier build of it
left, and write the manifest derived from `--audio-dir`.

Runs before the Beam job, on the submitting machine; files through Beam's FileSystems (local or gs://).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import List

from apache_beam.io.filesystems import FileSystems

from pipelines import audio_folder, schema
from pipelines.config import BuildConfig
from pipelines.dataset_meta import DatasetError, DatasetMeta
from pipelines.finalize import PREREJECTED_JSON
from pipelines.manifest import path_scheme, to_jsonl
from pipelines.paths import is_remote, join
from pipelines.rejection import Rejection

DERIVED_MANIFEST = "manifest.jsonl"  # OUT/manifest.jsonl, written for --audio-dir


class OutputError(ValueError):
    """An output folder the builder must not write into; the message says why, in one line."""


def check_output(out: str, config: BuildConfig, overwrite: bool) -> None:
    """Refuse an output folder that holds a different dataset, or anything that is not a dataset."""
    meta_path = join(out, schema.DATASET_JSON)
    if FileSystems.exists(meta_path):
        with FileSystems.open(meta_path) as f:
            text = f.read().decode("utf-8", "replace")
        try:
            previous = DatasetMeta.from_text(text).config
            diff = previous.differences(config)
        except DatasetError:
            diff = (schema.DATASET_JSON,)
        if diff and not overwrite:
            raise OutputError(f"--output {out} holds a different dataset (differs in: {', '.join(diff)}); "
                              "choose another --output or pass --overwrite")
        return
    if not is_remote(out) and os.path.isdir(out):
        others = [n for n in os.listdir(out) if n != schema.TEMP_DIR]
        if others and not overwrite:
            raise OutputError(f"--output {out} is not empty and holds no {schema.DATASET_JSON}; "
                              "choose an empty or new folder, or pass --overwrite")
    elif not is_remote(out) and os.path.exists(out):
        raise OutputError(f"--output {out} is a file, not a folder")


def prepare_output(out: str, config: BuildConfig, overwrite: bool) -> str:
    """Clear what an earlier build left (same config, or --overwrite) and return the manifest to read."""
    if not is_remote(out):
        os.makedirs(out, exist_ok=True)
    old = [m.path for m in FileSystems.match([join(out, "*")])[0].metadata_list]
    stale = [p for p in old if schema.SHARD_RE.match(os.path.basename(p)) or
             os.path.basename(p) in (schema.DATASET_JSON, schema.SPEAKERS_TSV, DERIVED_MANIFEST)]
    for sub in (schema.ERRORS_DIR, schema.REPORT_DIR, schema.TEMP_DIR):
        stale += [m.path for m in FileSystems.match([join(out, sub, "**")])[0].metadata_list]
    if overwrite and not is_remote(out):
        for name in os.listdir(out):
            p = os.path.join(out, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    elif stale:
        FileSystems.delete(stale)
    if config.manifest:
        return config.manifest
    return write_derived_manifest(out, config.audio_dir)


def write_derived_manifest(out: str, root: str) -> str:
    """OUT/manifest.jsonl for the folder `root`, and the files that are not records as pre-rejections."""
    if path_scheme(root):
        base = root.rstrip("/")
        listing = [m.path[len(base) + 1:] for m in FileSystems.match([base + "/**"])[0].metadata_list]
        records, skipped = audio_folder.records_from_audio_dir(root, lambda _r: listing)
    else:
        records, skipped = audio_folder.records_from_audio_dir(root)
    absolute = root if path_scheme(root) else os.path.abspath(root)
    records = [r.resolved(absolute) for r in records]
    derived = join(out, DERIVED_MANIFEST)
    with FileSystems.create(derived) as f:
        f.write(to_jsonl(records).encode("utf-8"))
    pre: List[Rejection] = [Rejection(id="", path=join(root, rel), stage="manifest", reason="not_audio", message=why)
                            for rel, why in skipped]
    if pre:
        with FileSystems.create(join(out, schema.TEMP_DIR, PREREJECTED_JSON)) as f:
            f.write(json.dumps([r.to_json() for r in pre]).encode("utf-8"))
    return derived
