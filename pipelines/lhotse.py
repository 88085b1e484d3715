"""Lhotse interop without Lhotse: a built dataset as Lhotse manifests, and Lhotse manifests as our manifest.

    python -m pipelines.lhotse export OUT DEST
    python -m pipelines.lhotse import --recordings R.jsonl.gz --supervisions S.jsonl.gz --output manifest.jsonl

The `lhotse` package pulls PyTorch, so this module writes and reads Lhotse's JSONL(.gz) manifests itself, one
JSON object per line, as `lhotse.serialization` does (`load_jsonl`, `deserialize_item`: a line with `sources`
is a Recording, one without `type` a SupervisionSegment):

- `Recording` (lhotse/audio/recording.py): `id`, `sources` (a list of `AudioSource`: `type` "file" / "url" /
  "command" / "memory", `channels` [int], `source` the path), `sampling_rate`, `num_samples`, `duration`
  (seconds), `channel_ids`, optionally `transforms`;
- `SupervisionSegment` (lhotse/supervision.py): `id`, `recording_id`, `start`, `duration` (seconds from the
  recording's start), `channel` (int or list), optionally `text`, `language`, `speaker`, `gender`, `custom`
  (a dict), `alignment`. Fields that are None are left out (`asdict_nonull`).

Export reads OUT/recordings.jsonl (pipelines.finalize: one summary per recording that gave segments) and
writes, per split, `<name>_recordings_<split>.jsonl.gz` and `<name>_supervisions_<split>.jsonl.gz` (`all` for
a `--split-by segment` dataset, whose recordings span splits). A Recording is the original file (its path, its
sample rate and channels, its decoded duration). Its one supervision covers the whole recording, start 0 to
its duration, because the manifest gave the builder the whole file as one speaker's; the builder then kept
only speech (pauses stripped, per-speaker caps): those seconds are `custom.kept_seconds`, spread over the file
(the examples' `source_start_s` place them), not one interval. `custom` also holds `split`, `speaker_name`,
`group`, `license`, `source`.

Import takes one or more recordings and supervisions manifests and writes our manifest.jsonl: one line per
recording, its speaker the one its supervisions name (the whole file is used, pauses stripped by the builder).
Every line goes through `ManifestRecord`, so its validation applies. Skipped, one line each on stderr: a
recording whose supervisions name more than one speaker (never merged), none, or no speaker; one with
several sources or a source that is not a file (a `command`, `memory` or `url` other than gs:// / s3://);
one with `transforms` (speed perturbation the builder would not apply); a duplicate id; a line that is not a
valid record. A speaker without a colon becomes `<--source>:<speaker>` (our `<source>:<native id>` keys).
"""
from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import sys
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta, DatasetError
from pipelines.manifest import REMOTE_SCHEMES, ManifestError, ManifestRecord, path_scheme, to_jsonl
from pipelines.paths import is_remote, join, read_bytes

DEFAULT_SOURCE = "lhotse"
ALL_SPLITS = "all"


class LhotseError(ValueError):
    """A file that is not a Lhotse manifest, or a dataset without recordings.jsonl: one line."""


# -- reading and writing JSONL(.gz) ------------------------------------------------------------------
def read_jsonl(path: str) -> Iterator[Tuple[int, Mapping]]:
    """(line number, object) of a JSONL or gzipped JSONL file (by its magic bytes), local or remote."""
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise LhotseError(f"{path}: no such file") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise LhotseError(f"{path}: not a readable gzip file ({exc})") from None
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            raise LhotseError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise LhotseError(f"{path}:{number}: a JSON {type(item).__name__}, not an object")
        yield number, item


def jsonl_gz(items: Iterable[Mapping]) -> bytes:
    """Gzipped JSONL with no timestamp or file name in the header: the same items give the same bytes."""
    text = "".join(json.dumps(i, ensure_ascii=False, sort_keys=True) + "\n" for i in items).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:
        f.write(text)
    return buf.getvalue()


def write_file(path: str, data: bytes) -> None:
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# -- export --------------------------------------------------------------------------------------------
def channel_count(layout: str) -> int:
    """Channels of an FFmpeg layout name as the decoders record it ("mono", "stereo", "5.1", "3 channels")."""
    words = (layout or "").split()
    if len(words) == 2 and words[0].isdigit() and words[1] == "channels":
        return int(words[0])
    known = {"": 1, "mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6,
             "6.1": 7, "7.1": 8}
    if layout in known:
        return known[layout]
    try:
        import av

        return int(av.AudioLayout(layout).nb_channels)
    except Exception:  # an unknown name: a layout PyAV cannot parse is counted as mono, never a crash
        return 1


def recording_and_supervision(summary: Mapping) -> Tuple[Dict, Dict]:
    """A Lhotse Recording and its one SupervisionSegment for a recording summary of OUT/recordings.jsonl."""
    rate = int(summary.get("input_sample_rate") or schema.SAMPLE_RATE)
    num_samples = int(round(float(summary.get("decoded_s", 0.0)) * rate))
    channels = list(range(channel_count(str(summary.get("channels", "")))))
    path = str(summary["path"])
    recording = {"id": summary["id"], "sampling_rate": rate, "num_samples": num_samples,
                 "duration": num_samples / rate, "channel_ids": channels,
                 "sources": [{"type": "url" if path_scheme(path) else "file", "channels": channels, "source": path}]}
    custom = {"kept_seconds": summary.get("used_s", 0.0), "split": summary.get("split") or ALL_SPLITS}
    custom.update({k: summary[k] for k in ("speaker_name", "group", "license", "source") if summary.get(k)})
    supervision = {"id": summary["id"], "recording_id": summary["id"], "start": 0.0, "duration": num_samples / rate,
                   "channel": channels[0] if len(channels) == 1 else channels, "speaker": summary["speaker"],
                   "custom": custom}
    if summary.get("language"):
        supervision["language"] = summary["language"]
    return recording, supervision


def read_recordings(dataset_dir: str) -> List[Mapping]:
    path = join(dataset_dir, schema.RECORDINGS_JSONL)
    try:
        return [item for _, item in read_jsonl(path)]
    except LhotseError:
        raise LhotseError(f"{dataset_dir} holds no readable {schema.RECORDINGS_JSONL}; rebuild it with "
                          "python -m pipelines.build_dataset (datasets built before it was written lack it)") from None


def export(dataset_dir: str, dest: str) -> Dict[str, Tuple[str, str]]:
    """Write the Lhotse manifests of a built dataset into `dest`; {part: (recordings file, supervisions file)}."""
    meta = DatasetMeta.read(dataset_dir)
    prefix = schema.safe_name(meta.name or "dataset")
    parts: Dict[str, List[Tuple[Dict, Dict]]] = collections.defaultdict(list)
    for summary in sorted(read_recordings(dataset_dir), key=lambda s: s["id"]):
        rec, sup = recording_and_supervision(summary)
        parts[sup["custom"]["split"]].append((rec, sup))
    written = {}
    for part in sorted(parts, key=lambda p: (schema.SPLITS + (ALL_SPLITS,)).index(p)):
        pairs = parts[part]
        recs = join(dest, f"{prefix}_recordings_{part}.jsonl.gz")
        sups = join(dest, f"{prefix}_supervisions_{part}.jsonl.gz")
        write_file(recs, jsonl_gz(r for r, _ in pairs))
        write_file(sups, jsonl_gz(s for _, s in pairs))
        written[part] = (recs, sups)
    return written


# -- import --------------------------------------------------------------------------------------------
class Skipped(Exception):
    """A Lhotse recording that cannot become a manifest line; `reason` is a short stable code."""

    def __init__(self, recording_id: str, reason: str, message: str):
        super().__init__(f"{recording_id}: {reason}: {message}")
        self.recording_id, self.reason, self.message = recording_id, reason, message


def speaker_key(speaker: str, source: str) -> str:
    return speaker if ":" in speaker else f"{source}:{speaker}"


def source_path(recording: Mapping) -> str:
    """The one audio file of a recording; Skipped otherwise. Relative paths are taken from the current folder,
    as Lhotse reads them."""
    rid = str(recording.get("id", ""))
    sources = recording.get("sources")
    if not isinstance(sources, list) or not sources:
        raise Skipped(rid, "no_source", "the recording has no sources")
    if len(sources) > 1:
        raise Skipped(rid, "multi_source", f"{len(sources)} sources (one file per channel?); the builder reads "
                      "one file per recording")
    src = sources[0] if isinstance(sources[0], dict) else {}
    kind, path = src.get("type"), src.get("source")
    if not isinstance(path, str) or not path:
        raise Skipped(rid, "no_source", "the source names no path")
    if kind == "url" and path_scheme(path) in REMOTE_SCHEMES:
        return path
    if kind != "file":
        raise Skipped(rid, "not_a_file", f"source type {kind!r} is not a file (or a gs:// / s3:// url)")
    return path if os.path.isabs(path) or path_scheme(path) else os.path.abspath(path)


def to_record(recording: Mapping, supervisions: Sequence[Mapping], source: str) -> ManifestRecord:
    """One Lhotse recording and its supervisions -> a validated ManifestRecord; Skipped with a reason."""
    rid = str(recording.get("id", ""))
    if recording.get("transforms"):
        raise Skipped(rid, "transforms", "the recording carries transforms (e.g. speed perturbation) the "
                      "builder would not apply")
    path = source_path(recording)
    if not supervisions:
        raise Skipped(rid, "no_supervision", "no supervision names this recording")
    speakers = sorted({str(s["speaker"]) for s in supervisions if s.get("speaker")})
    if not speakers:
        raise Skipped(rid, "no_speaker", f"its {len(supervisions)} supervision(s) name no speaker")
    if len(speakers) > 1:
        raise Skipped(rid, "several_speakers", f"its supervisions name {len(speakers)} speakers "
                      f"({', '.join(speakers[:5])}); one recording is one speaker's here, never merged")
    languages = sorted({str(s["language"]) for s in supervisions if s.get("language")})
    custom: Dict = {}
    for s in supervisions:
        if isinstance(s.get("custom"), dict):
            custom.update(s["custom"])
    fields = {k: custom[k] for k in ("speaker_name", "group", "license", "source") if isinstance(custom.get(k), str)}
    duration = recording.get("duration")
    try:
        return ManifestRecord(id=rid, path=path, speaker=speaker_key(speakers[0], source), recording=rid,
                              language=languages[0] if len(languages) == 1 else "",
                              duration_s=duration if isinstance(duration, (int, float)) else None,
                              extra={"lhotse_supervisions": len(supervisions)}, **fields)
    except ManifestError as exc:
        raise Skipped(rid or "(no id)", exc.reason, exc.message) from None


def import_manifests(recordings: Sequence[str], supervisions: Sequence[str], source: str = DEFAULT_SOURCE
                     ) -> Tuple[List[ManifestRecord], List[Skipped]]:
    """Records (sorted by id) and the recordings skipped, from Lhotse recordings and supervisions manifests."""
    by_recording: Dict[str, List[Mapping]] = collections.defaultdict(list)
    for path in supervisions:
        for number, item in read_jsonl(path):
            if "sources" in item or "recording_id" not in item:
                raise LhotseError(f"{path}:{number}: not a SupervisionSegment (no recording_id)")
            by_recording[str(item["recording_id"])].append(item)
    records: Dict[str, ManifestRecord] = {}
    skipped: List[Skipped] = []
    for path in recordings:
        for number, item in read_jsonl(path):
            if "sources" not in item:
                raise LhotseError(f"{path}:{number}: not a Recording (no sources)")
            rid = str(item.get("id", ""))
            try:
                if rid in records:
                    raise Skipped(rid, "duplicate_id", f"recording id seen before ({path}:{number})")
                records[rid] = to_record(item, by_recording.get(rid, []), source)
            except Skipped as exc:
                skipped.append(exc)
    orphans = sorted(set(by_recording) - set(records) - {s.recording_id for s in skipped})
    for rid in orphans:
        skipped.append(Skipped(rid, "no_recording", f"{len(by_recording[rid])} supervision(s) of a recording "
                               "absent from the recordings manifest"))
    return [records[k] for k in sorted(records)], skipped


# -- command line --------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    prog = "python -m pipelines.lhotse"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write a built dataset's recordings and supervisions as Lhotse manifests")
    exp.add_argument("dataset", metavar="OUT", help="a folder written by python -m pipelines.build_dataset")
    exp.add_argument("dest", metavar="DEST", help="folder for <name>_{recordings,supervisions}_<split>.jsonl.gz")
    imp = sub.add_parser("import", help="Lhotse recordings + supervisions -> our manifest.jsonl")
    imp.add_argument("--recordings", nargs="+", required=True, help="RecordingSet JSONL(.gz) file(s)")
    imp.add_argument("--supervisions", nargs="+", required=True, help="SupervisionSet JSONL(.gz) file(s)")
    imp.add_argument("--output", required=True, help="the manifest.jsonl to write (for build_dataset --manifest)")
    imp.add_argument("--source", default=DEFAULT_SOURCE,
                     help="prefix of speakers that have no colon: <source>:<speaker> (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            for part, (recs, sups) in export(args.dataset, args.dest).items():
                print(f"{part}: {recs} {sups}")
            return 0
        records, skipped = import_manifests(args.recordings, args.supervisions, args.source)
        for s in skipped:
            print(f"{prog}: skipped {s.recording_id}: {s.reason}: {s.message}", file=sys.stderr)
        write_file(args.output, to_jsonl(records).encode("utf-8"))
        print(f"{args.output}: {len(records)} recording(s), {len(set(r.speaker for r in records))} speaker(s); "
              f"{len(skipped)} skipped")
        return 0 if records else 1
    except (LhotseError, DatasetError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
