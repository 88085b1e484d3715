"""Beam wrappers: thin DoFns around the plain functions, and one composite PTransform per stage.

Every stage sends what it cannot use to a tagged `rejected` output: a dict with id, path, stage,
reason and message that ends in OUT/errors/. Beam counters count each outcome.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from typing import Dict, List, Optional

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines import audio as audio_lib
from pipelines import planning, runtime, schema, shards
from pipelines.paths import is_remote, join
from pipelines.manifest import ManifestError, parse_line

NAMESPACE = "build_dataset"
REJECTED = "rejected"


def reject(record: Dict, stage: str, reason: str, message: str) -> Dict:
    Metrics.counter(NAMESPACE, f"rejected_{reason}").inc()
    return {"id": record.get("id", ""), "path": record.get("path", ""), "stage": stage,
            "reason": reason, "message": message, "line": record.get("_line")}


# ---------------------------------------------------------------------------------------------
# 1. Manifest
# ---------------------------------------------------------------------------------------------
class ReadManifestLinesFn(beam.DoFn):
    """(line number, text) of every non-blank line of a JSONL manifest."""

    def process(self, path: str):
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            for number, raw in enumerate(f, start=1):
                text = raw.decode("utf-8", "replace").strip()
                if text:
                    yield number, text


class ParseManifestFn(beam.DoFn):
    def __init__(self, base_dir: str):
        self.base_dir = base_dir

    def process(self, item):
        number, text = item
        try:
            record = parse_line(text, self.base_dir)
        except ManifestError as exc:
            yield pvalue.TaggedOutput(REJECTED, reject(
                {"id": f"line-{number}", "_line": number}, "manifest", exc.reason, exc.message))
            return
        record["_line"] = number
        Metrics.counter(NAMESPACE, "manifest_records").inc()
        yield record


def _first_of_each_id(item):
    """Keep the earliest manifest line of each id; later ones are duplicates."""
    _, records = item
    records = sorted(records, key=lambda r: r["_line"])
    yield records[0]
    for dup in records[1:]:
        yield pvalue.TaggedOutput(REJECTED, reject(
            dup, "manifest", "duplicate_id", f"id already used on manifest line {records[0]['_line']}"))


class ReadManifest(beam.PTransform):
    """Manifest path -> validated, de-duplicated records (+ `rejected`)."""

    def __init__(self, manifest_path: str):
        super().__init__()
        self.manifest_path = manifest_path

    def expand(self, pbegin):
        base = posixpath.dirname(self.manifest_path) if "://" in self.manifest_path else \
            os.path.dirname(os.path.abspath(self.manifest_path))
        parsed = (pbegin
                  | "ManifestPath" >> beam.Create([self.manifest_path])
                  | "ReadLines" >> beam.ParDo(ReadManifestLinesFn())
                  | "Parse" >> beam.ParDo(ParseManifestFn(base)).with_outputs(REJECTED, main="records"))
        unique = (parsed.records
                  | "KeyById" >> beam.Map(lambda r: (r["id"], r))
                  | "GroupById" >> beam.GroupByKey()
                  | "Dedupe" >> beam.FlatMap(_first_of_each_id).with_outputs(REJECTED, main="records"))
        rejected = ((parsed[REJECTED], unique[REJECTED]) | "FlattenRejected" >> beam.Flatten())
        return {"records": unique.records, REJECTED: rejected}


# ---------------------------------------------------------------------------------------------
# 2. Decode, resample, strip silence (the analysis pass)
# ---------------------------------------------------------------------------------------------
def speech_path(temp_dir: str, rec_id: str) -> str:
    return join(temp_dir, "speech", f"{planning.stable_hash(rec_id):016x}-{schema.safe_name(rec_id, 60)}.s16")


class AnalyzeAudioFn(beam.DoFn):
    """Decode one recording, strip its pauses and store its speech-only 16 kHz PCM for the cutter."""

    def __init__(self, temp_dir: str, silence: audio_lib.SilenceParams, segment_samples: int,
                 hop_samples: int, partial: str):
        self.temp_dir = temp_dir
        self.silence = silence
        self.seg, self.hop, self.partial = segment_samples, hop_samples, partial

    def setup(self):
        runtime.fast_exit()  # this worker process then exits in ~0.1 s instead of ~1 s
        self.decoded_seconds = Metrics.counter(NAMESPACE, "decoded_seconds")
        self.speech_seconds = Metrics.counter(NAMESPACE, "speech_seconds")

    def process(self, record: Dict):
        path = record["path"]
        out_path = speech_path(self.temp_dir, record["id"])
        try:
            if "://" in path and not FileSystems.exists(path):
                raise audio_lib.AudioError("missing_file", f"no such file: {path}")
            with audio_lib.local_copy(path, FileSystems.open) as local:
                _check_file(record, local)
                writer = FileSystems.create(out_path, mime_type="application/octet-stream")
                try:
                    analysis = audio_lib.analyze_and_strip(
                        local, writer.write, self.silence, record.get("duration_s"))
                finally:
                    writer.close()
        except audio_lib.AudioError as exc:
            _delete_quietly(out_path)
            yield pvalue.TaggedOutput(REJECTED, reject(record, "decode", exc.reason, exc.message))
            return
        n = audio_lib.count_segments(analysis.speech_samples, self.seg, self.hop, self.partial)
        if n == 0:
            _delete_quietly(out_path)
            yield pvalue.TaggedOutput(REJECTED, reject(
                record, "segment", "too_short",
                f"{analysis.speech_s:.2f} s of speech after silence stripping "
                f"(decoded {analysis.decoded_s:.2f} s) is shorter than one {self.seg / schema.SAMPLE_RATE:g} s segment"))
            return
        with FileSystems.create(out_path + ".intervals.json") as f:
            f.write(json.dumps(analysis.intervals).encode())
        self.decoded_seconds.inc(int(round(analysis.decoded_s)))
        self.speech_seconds.inc(int(round(analysis.speech_s)))
        meta = {k: v for k, v in record.items()}
        meta.update({
            "decoded_s": round(analysis.decoded_s, 4), "speech_s": round(analysis.speech_s, 4),
            "speech_samples": analysis.speech_samples, "speech_level_db": analysis.speech_level_db,
            "threshold_db": analysis.threshold_db, "pauses_removed": analysis.pauses_removed,
            "codec": analysis.codec, "input_sample_rate": analysis.input_sample_rate,
            "channels": analysis.channels, "speech_path": out_path,
        })
        yield meta


def _check_file(record: Dict, local: str) -> None:
    if not os.path.exists(local):
        raise audio_lib.AudioError("missing_file", f"no such file: {record['path']}")
    size = os.path.getsize(local)
    if record.get("bytes") is not None and size != record["bytes"]:
        raise audio_lib.AudioError("size_mismatch", f"{size} bytes on disk, the manifest says {record['bytes']}")
    if record.get("sha256"):
        import hashlib

        digest = hashlib.sha256()
        with open(local, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != record["sha256"].lower():
            raise audio_lib.AudioError("checksum_mismatch", "sha256 of the file differs from the manifest")


def _delete_quietly(path: str) -> None:
    for p in (path, path + ".intervals.json"):
        try:
            if FileSystems.exists(p):
                FileSystems.delete([p])
        except Exception:  # best effort: the whole temp folder is removed at the end
            pass


class AnalyzeAudio(beam.PTransform):
    """Records -> analysed recordings with speech-only PCM stored under the temp folder (+ `rejected`)."""

    def __init__(self, temp_dir, silence, segment_samples, hop_samples, partial):
        super().__init__()
        self.fn = AnalyzeAudioFn(temp_dir, silence, segment_samples, hop_samples, partial)

    def expand(self, records):
        out = (records
               | "Spread" >> beam.Reshuffle()
               | "DecodeAndStrip" >> beam.ParDo(self.fn).with_outputs(REJECTED, main="analyzed"))
        return {"analyzed": out.analyzed, REJECTED: out[REJECTED]}


# ---------------------------------------------------------------------------------------------
# 3 + 5. Caps, minimums and split (on small metadata only)
# ---------------------------------------------------------------------------------------------
def _apply_plan(metas: List[Dict], config: planning.PlanConfig):
    entries = [planning.Entry(m["id"], m["speaker"], m["recording"], m["speech_samples"]) for m in metas]
    assignments, rejects = planning.make_plan(entries, config)
    by_id = {m["id"]: m for m in metas}
    for rec_id, reason, message in rejects:
        yield pvalue.TaggedOutput(REJECTED, reject(by_id[rec_id], "plan", reason, message))
        _delete_quietly(by_id[rec_id]["speech_path"])
    expected = planning.expected_segments(assignments, config.fractions)
    yield pvalue.TaggedOutput("expected", expected)
    for a in assignments:
        meta = dict(by_id[a.id])
        meta.update({"split": a.split, "max_segments": a.max_segments, "used_s": round(a.seconds, 4)})
        yield meta


class PlanDataset(beam.PTransform):
    """Analysed recordings -> planned recordings (split, segment budget), `expected` counts, `rejected`."""

    def __init__(self, config: planning.PlanConfig):
        super().__init__()
        self.config = config

    def expand(self, analyzed):
        out = (analyzed
               | "Metadata" >> beam.combiners.ToList()
               | "Plan" >> beam.FlatMap(_apply_plan, self.config).with_outputs(REJECTED, "expected", main="planned"))
        return {"planned": out.planned, "expected": out.expected, REJECTED: out[REJECTED]}


# ---------------------------------------------------------------------------------------------
# 4. Segments
# ---------------------------------------------------------------------------------------------
SEGMENT_META = (schema.SPEAKER, schema.SPEAKER_NAME, schema.RECORDING, schema.GROUP, schema.SOURCE,
                schema.LICENSE, schema.LANGUAGE)


def segment_id(rec_id: str, start_sample: int) -> str:
    return f"{rec_id}-{start_sample * 1000 // schema.SAMPLE_RATE:09d}"


class CutSegmentsFn(beam.DoFn):
    def __init__(self, segment_samples: int, hop_samples: int, partial: str, fractions, split_seed: str):
        self.seg, self.hop, self.partial = segment_samples, hop_samples, partial
        self.fractions, self.split_seed = tuple(fractions), split_seed

    def setup(self):
        self.segments = Metrics.counter(NAMESPACE, "segments")

    def process(self, meta: Dict):
        path = meta["speech_path"]
        with FileSystems.open(path + ".intervals.json") as f:
            source_map = audio_lib.SourceMap([tuple(x) for x in json.loads(f.read())])
        with FileSystems.open(path, mime_type="application/octet-stream",
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            chunks = iter(lambda: f.read(audio_lib.CHUNK_SAMPLES * schema.SAMPLE_WIDTH), b"")
            pcm_chunks = (audio_lib.read_pcm(c[: len(c) - len(c) % 2]) for c in chunks)
            for start, pcm, valid in audio_lib.iter_segments(pcm_chunks, self.seg, self.hop, self.partial,
                                                             limit=meta["max_segments"]):
                seg_id = segment_id(meta["id"], start)
                split = meta["split"] or planning.segment_split(seg_id, self.fractions, self.split_seed)
                self.segments.inc()
                item = {k: meta.get(k, "") for k in SEGMENT_META}
                item.update({
                    schema.ID: seg_id, "recording_id": meta["id"], "split": split, "pcm": pcm,
                    schema.START_S: start / schema.SAMPLE_RATE,
                    schema.SOURCE_START_S: source_map(start) / schema.SAMPLE_RATE,
                    schema.NUM_VALID_SAMPLES: valid,
                })
                yield item


class CutSegments(beam.PTransform):
    def __init__(self, segment_samples, hop_samples, partial, fractions, split_seed):
        super().__init__()
        self.fn = CutSegmentsFn(segment_samples, hop_samples, partial, fractions, split_seed)

    def expand(self, planned):
        return planned | "Spread" >> beam.Reshuffle() | "Cut" >> beam.ParDo(self.fn)


# ---------------------------------------------------------------------------------------------
# 6. Features (batched TensorFlow) and tf.train.Example
# ---------------------------------------------------------------------------------------------
def serialize_example(item: Dict, feature_bytes: Dict[str, bytes]) -> bytes:
    """One segment's `tf.train.Example` (DESIGN.md 2.2), serialized deterministically (map keys sorted).

    `item` holds the segment's metadata as CutSegmentsFn made it; `feature_bytes` each feature's raw
    little-endian bytes (`audio` int16, the others float32)."""
    import tensorflow as tf

    train = tf.train
    feats = {k: train.Feature(bytes_list=train.BytesList(value=[str(item[k]).encode("utf-8")]))
             for k in SEGMENT_META + (schema.ID,)}
    for k in schema.FLOAT_KEYS:
        feats[k] = train.Feature(float_list=train.FloatList(value=[item[k]]))
    feats[schema.SAMPLE_RATE_KEY] = train.Feature(int64_list=train.Int64List(value=[schema.SAMPLE_RATE]))
    feats[schema.NUM_VALID_SAMPLES] = train.Feature(int64_list=train.Int64List(value=[item[schema.NUM_VALID_SAMPLES]]))
    for name, raw in feature_bytes.items():
        feats[name] = train.Feature(bytes_list=train.BytesList(value=[raw]))
    return train.Example(features=train.Features(feature=feats)).SerializeToString(deterministic=True)


def feature_bytes(item: Dict, computed: Dict[str, np.ndarray], i: int, features) -> Dict[str, bytes]:
    """The stored bytes of each feature of the batch's `i`-th segment (`audio` from its own PCM)."""
    return {name: audio_lib.pcm_to_bytes(item["pcm"]) if name == schema.AUDIO else
            np.ascontiguousarray(computed[name][i], dtype="<f4").tobytes() for name in features}


def featurize_batch(featurizer, batch: List[Dict], features) -> List[bytes]:
    """Serialized examples of a batch of segments: one feature call for the whole batch."""
    computed = featurizer(np.stack([item["pcm"] for item in batch]))
    return [serialize_example(item, feature_bytes(item, computed, i, features)) for i, item in enumerate(batch)]


class FeaturizeFn(beam.DoFn):
    """A batch of segments -> (split, sort key, meta bytes, serialized tf.train.Example) per segment."""

    def __init__(self, config: schema.FeatureConfig, features):
        self.config = config
        self.features = tuple(features)

    def setup(self):
        runtime.fast_exit()
        from pipelines.features import BatchFeaturizer

        self.featurizer = BatchFeaturizer(self.config, self.features)

    def process(self, batch: List[Dict]):
        for item, example in zip(batch, featurize_batch(self.featurizer, batch, self.features)):
            meta = "\t".join((item[schema.ID], item[schema.SPEAKER], item[schema.RECORDING],
                              item["recording_id"], str(item[schema.NUM_VALID_SAMPLES]))).encode("utf-8")
            yield item["split"], planning.stable_hash(item[schema.ID]), meta, example


class ComputeFeatures(beam.PTransform):
    def __init__(self, config: schema.FeatureConfig, features, batch_size: int = 64):
        super().__init__()
        self.config, self.features, self.batch_size = config, tuple(features), batch_size

    def expand(self, segments):
        return (segments
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
                | "Featurize" >> beam.ParDo(FeaturizeFn(self.config, self.features)))


# ---------------------------------------------------------------------------------------------
# 7. Deterministic sharded TFRecord writer
# ---------------------------------------------------------------------------------------------
def shard_counts(expected: Dict[str, float], bytes_per_example: int, num_shards: Optional[int],
                 shard_bytes: int) -> Dict[str, int]:
    out = {}
    for split, n in expected.items():
        if n <= 0:
            out[split] = 0
        elif num_shards:
            out[split] = num_shards
        else:
            out[split] = max(1, int(np.ceil(n * bytes_per_example / shard_bytes)))
    return out


class SpillFn(beam.DoFn):
    """Append each example to this bundle's spill file for its (split, shard); emit the files at the end."""

    def __init__(self, temp_dir: str):
        self.temp_dir = temp_dir

    def start_bundle(self):
        self.files = {}

    def process(self, item, counts):
        split, key, meta, example = item
        shard = key % counts[split]
        f = self.files.get((split, shard))
        if f is None:
            path = join(self.temp_dir, "spill", f"{split}-{shard:05d}-{uuid.uuid4().hex}.spill")
            f = self.files[(split, shard)] = (path, FileSystems.create(path, mime_type="application/octet-stream"))
        f[1].write(shards.spill_frame(key, meta, example))

    def finish_bundle(self):
        for (split, shard), (path, handle) in sorted(self.files.items()):
            handle.close()
            yield WindowedValue(((split, shard), path), -1, [GlobalWindow()])
        self.files = {}


class MergeShardFn(beam.DoFn):
    """All spill files of one shard -> the final, deterministically ordered TFRecord shard."""

    def __init__(self, output_dir: str, gzip: bool):
        self.output_dir, self.gzip = output_dir, gzip

    def process(self, item, counts):
        (split, shard), paths = item
        with contextlib.ExitStack() as stack:
            files, index = [], []
            for path in sorted(paths):
                files.append(stack.enter_context(_open_seekable(path)))
                index.extend((key, meta, len(files) - 1, offset, size)
                             for key, meta, offset, size in shards.index_spill(files[-1]))
            index = shards.sort_spilled(index)  # only keys, ids and offsets: ~300 bytes a segment
            yield self._write(split, shard, counts, index, files)

    def _write(self, split, shard, counts, index, files):
        name = schema.shard_name(split, shard, counts[split], self.gzip)
        out_path = join(self.output_dir, name)
        written = 0
        recordings: Dict[str, List] = {}
        handle = FileSystems.create(out_path, mime_type="application/octet-stream",
                                    compression_type=CompressionTypes.GZIP if self.gzip else CompressionTypes.UNCOMPRESSED)
        with handle:
            for _, meta, file_index, offset, size in index:
                f = files[file_index]
                f.seek(offset)
                example = f.read(size)
                framed = shards.tfrecord_frame(example)
                handle.write(framed)
                written += len(framed)
                seg_id, speaker, recording, rec_id, valid = meta.decode("utf-8").split("\t")
                entry = recordings.setdefault(rec_id, [speaker, recording, 0, 0])
                entry[2] += 1
                entry[3] += int(valid)
        Metrics.counter(NAMESPACE, f"examples_{split}").inc(len(index))
        return {"split": split, "shard": shard, "file": name, "examples": len(index),
                "uncompressed_bytes": written, "recordings": recordings}


@contextlib.contextmanager
def _open_seekable(path: str):
    """A local spill file opened for random reads; a remote one (gs://) is first copied to a local
    temporary file, so the merge reads it sequentially once instead of one ranged request per example."""
    if not is_remote(path):
        with open(path, "rb") as f:
            yield f
        return
    with tempfile.TemporaryFile(prefix="spill-") as local:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as remote:
            shutil.copyfileobj(remote, local, 1 << 20)
        yield local


class WriteShards(beam.PTransform):
    """(split, key, meta, example) -> TFRecord shards in output_dir; returns per-shard statistics."""

    def __init__(self, output_dir: str, temp_dir: str, gzip: bool):
        super().__init__()
        self.output_dir, self.temp_dir, self.gzip = output_dir, temp_dir, gzip

    def expand(self, examples_and_counts):
        examples, counts = examples_and_counts
        counts_view = beam.pvalue.AsSingleton(counts)
        return (examples
                | "Spill" >> beam.ParDo(SpillFn(self.temp_dir), counts_view)
                | "GroupByShard" >> beam.GroupByKey()
                | "Merge" >> beam.ParDo(MergeShardFn(self.output_dir, self.gzip), counts_view))


# ---------------------------------------------------------------------------------------------
# Small JSON outputs for the finalize step
# ---------------------------------------------------------------------------------------------
def _write_json_list(items: List, path: str, sort_key=None) -> None:
    items = sorted(items, key=sort_key) if sort_key else items
    with FileSystems.create(path, mime_type="application/json") as f:
        f.write(json.dumps(items, sort_keys=True).encode("utf-8"))


class WriteJsonList(beam.PTransform):
    """Collect a small PCollection and write it as one sorted JSON list (deterministic)."""

    def __init__(self, path: str, sort_key=None):
        super().__init__()
        self.path, self.sort_key = path, sort_key

    def expand(self, pcoll):
        return (pcoll
                | "Collect" >> beam.combiners.ToList()
                | "Write" >> beam.Map(_write_json_list, self.path, self.sort_key))


def planned_summary(meta: Dict) -> Dict:
    """What finalize needs of a planned recording (no paths into the temp folder)."""
    keep = ("id", "path", "speaker", "speaker_name", "recording", "group", "source", "license", "language",
            "decoded_s", "speech_s", "used_s", "speech_level_db", "threshold_db", "pauses_removed", "codec",
            "input_sample_rate", "channels", "split", "max_segments", "title", "url")
    return {k: meta[k] for k in keep if k in meta}
