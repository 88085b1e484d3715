"""The builder's stages as Beam composites, each a thin wrapper around plain functions.

ReadManifest -> AnalyzeAudio -> PlanDataset -> CutSegments -> ComputeFeatures -> WriteShards. The
composites take the run's `BuildConfig`; each stage sends what it cannot use to a tagged `rejected`
output (a `Rejection`) that ends in OUT/errors/, and Beam counters count every outcome.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from typing import Callable, Dict, Iterable, List, Optional

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines import audit, examples, planning, process_lifecycle, quality, schema, shards, speech_file
from pipelines.build_progress import feed_dir, record_done
from pipelines.config import BuildConfig
from pipelines.decode import AudioError, local_copy, regular_file_size
from pipelines.manifest import ManifestError, ManifestRecord, decode_line, is_blank, parse_line, path_scheme
from pipelines.paths import is_remote, join
from pipelines.rejection import Rejection
from pipelines.segments import SourceMap, segment_id
from pipelines.silence import Analysis, analyze_and_strip

NAMESPACE = "build_dataset"
REJECTED = "rejected"


def reject(record_id: str, path: str, stage: str, reason: str, message: str,
           line: Optional[int] = None) -> Rejection:
    Metrics.counter(NAMESPACE, f"rejected_{reason}").inc()
    return Rejection(id=record_id, path=path, stage=stage, reason=reason, message=message, line=line)


def reject_record(record: ManifestRecord, stage: str, reason: str, message: str) -> Rejection:
    return reject(record.id, record.path, stage, reason, message, record.line)


# ---------------------------------------------------------------------------------------------
# 1. Manifest
# ---------------------------------------------------------------------------------------------
class ReadManifestLinesFn(beam.DoFn):
    """(line number, raw bytes) of every non-blank line of a JSONL manifest."""

    def process(self, path: str):
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
            for number, raw in enumerate(f, start=1):
                if not is_blank(raw):
                    yield number, raw


class ParseManifestFn(beam.DoFn):
    def __init__(self, base_dir: str, progress_feed: Optional[str] = None):
        self.base_dir, self.progress_feed = base_dir, progress_feed

    def process(self, item):
        number, raw = item
        try:
            record = parse_line(decode_line(raw), self.base_dir, line=number)
        except ManifestError as exc:
            record_done(self.progress_feed)
            yield pvalue.TaggedOutput(REJECTED, reject(f"line-{number}", "", "manifest", exc.reason, exc.message,
                                                       number))
            return
        Metrics.counter(NAMESPACE, "manifest_records").inc()
        yield record


def first_of_each_id(item, progress_feed: Optional[str] = None):
    """Keep the earliest manifest line of each id; later ones are duplicates."""
    _, records = item
    records = sorted(records, key=lambda r: r.line or 0)
    yield records[0]
    for dup in records[1:]:
        record_done(progress_feed)
        yield pvalue.TaggedOutput(REJECTED, reject_record(
            dup, "manifest", "duplicate_id", f"id already used on manifest line {records[0].line}"))


def manifest_dir(manifest_path: str) -> str:
    """The folder relative manifest paths are resolved against."""
    if path_scheme(manifest_path):
        return posixpath.dirname(manifest_path)
    return os.path.dirname(os.path.abspath(manifest_path))


class ReadManifest(beam.PTransform):
    """Manifest path -> validated, de-duplicated ManifestRecords (+ `rejected`). Lines rejected here count as
    done in the build's progress (`progress_feed`, pipelines.build_progress)."""

    def __init__(self, manifest_path: str, progress_feed: Optional[str] = None):
        super().__init__()
        self.manifest_path, self.progress_feed = manifest_path, progress_feed

    def expand(self, pbegin):
        parsed = (pbegin
                  | "ManifestPath" >> beam.Create([self.manifest_path])
                  | "ReadLines" >> beam.ParDo(ReadManifestLinesFn())
                  | "Parse" >> beam.ParDo(ParseManifestFn(manifest_dir(self.manifest_path), self.progress_feed))
                  .with_outputs(REJECTED, main="records"))
        unique = (parsed.records
                  | "KeyById" >> beam.Map(lambda r: (r.id, r))
                  | "GroupById" >> beam.GroupByKey()
                  | "Dedupe" >> beam.FlatMap(first_of_each_id, self.progress_feed)
                  .with_outputs(REJECTED, main="records"))
        rejected = ((parsed[REJECTED], unique[REJECTED]) | "FlattenRejected" >> beam.Flatten())
        return {"records": unique.records, REJECTED: rejected}


# ---------------------------------------------------------------------------------------------
# 2. Decode, resample, strip silence (the analysis pass)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AnalyzedRecording:
    """A recording decoded into enough speech; its speech-only PCM and kept intervals wait in `speech_path`
    (pipelines.speech_file; the analysis travels without its intervals: planning holds every recording's
    metadata at once)."""

    record: ManifestRecord
    analysis: Analysis
    speech_path: str


@dataclasses.dataclass(frozen=True)
class PlannedRecording:
    """An analysed recording with its split (None: per segment) and segment budget."""

    analyzed: AnalyzedRecording
    split: Optional[str]
    max_segments: int
    used_s: float

    def summary(self) -> Dict:
        """What finalize and the report need (no paths into the temp folder)."""
        a, r = self.analyzed.analysis, self.analyzed.record
        out = {"id": r.id, "path": r.path, "speaker": r.speaker, "speaker_name": r.speaker_name,
               "recording": r.recording, "group": r.group, "source": r.source, "license": r.license,
               "language": r.language, "decoded_s": round(a.decoded_s, 4), "speech_s": round(a.speech_s, 4),
               "used_s": self.used_s,
               "speech_level_db": a.speech_level_db, "threshold_db": a.threshold_db,
               "pauses_removed": a.pauses_removed, "codec": a.codec, "input_sample_rate": a.input_sample_rate,
               "channels": a.channels, "split": self.split, "max_segments": self.max_segments,
               "audio_sha256": a.pcm_sha256}
        out.update({k: getattr(r, k) for k in ("title", "url") if getattr(r, k)})
        return out


def speech_path(temp_dir: str, rec_id: str) -> str:
    return join(temp_dir, "speech", f"{planning.stable_hash(rec_id):016x}-{schema.safe_name(rec_id, 60)}.s16")


def check_file(record: ManifestRecord, local: str) -> None:
    """The file exists, is a regular file (a folder, FIFO or device is never opened: a FIFO would block
    forever) and agrees with the manifest's `bytes` and `sha256`; AudioError otherwise."""
    size = regular_file_size(local, record.path)
    if record.bytes is not None and size != record.bytes:
        raise AudioError("size_mismatch", f"{size} bytes on disk, the manifest says {record.bytes}")
    if record.sha256:
        digest = hashlib.sha256()
        with open(local, "rb") as f:  # a regular file, checked above
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != record.sha256:
            raise AudioError("checksum_mismatch", "sha256 of the file differs from the manifest")


def delete_quietly(path: str) -> None:
    try:
        if FileSystems.exists(path):
            FileSystems.delete([path])
    except Exception:  # best effort: the whole temp folder is removed at the end
        pass


class AnalyzeAudioFn(beam.DoFn):
    """Decode one recording, strip its pauses and store its speech-only 16 kHz PCM for the cutter."""

    def __init__(self, config: BuildConfig, temp_dir: str):
        self.config, self.temp_dir = config, temp_dir
        self.progress_feed = feed_dir(temp_dir)

    def setup(self):
        process_lifecycle.fast_exit()  # this worker process then exits at once instead of collecting its heap
        self.segmentation = self.config.segmentation
        self.decoded_seconds = Metrics.counter(NAMESPACE, "decoded_seconds")
        self.speech_seconds = Metrics.counter(NAMESPACE, "speech_seconds")

    def process(self, record: ManifestRecord):
        path = record.path
        out_path = speech_path(self.temp_dir, record.id)
        try:
            if is_remote(path) and not FileSystems.exists(path):
                raise AudioError("missing_file", f"no such file: {path}")
            with local_copy(path, FileSystems.open) as local:
                check_file(record, local)
                writer = FileSystems.create(out_path, mime_type="application/octet-stream")
                try:
                    analysis = analyze_and_strip(local, writer.write, self.config.silence, record.duration_s,
                                                 decoder=self.config.decoder,
                                                 measure_quality=self.config.audit.enabled)
                    writer.write(speech_file.intervals_trailer(analysis.intervals))
                finally:
                    writer.close()
        except AudioError as exc:
            delete_quietly(out_path)
            record_done(self.progress_feed)
            yield pvalue.TaggedOutput(REJECTED, reject_record(record, "decode", exc.reason, exc.message))
            return
        record_done(self.progress_feed, analysis.decoded_s)
        if self.segmentation.count(analysis.speech_samples) == 0:
            delete_quietly(out_path)
            yield pvalue.TaggedOutput(REJECTED, reject_record(
                record, "segment", "too_short",
                f"{analysis.speech_s:.2f} s of speech after silence stripping (decoded {analysis.decoded_s:.2f} s) "
                f"is shorter than one {self.segmentation.segment_seconds:g} s segment"))
            return
        self.decoded_seconds.inc(int(round(analysis.decoded_s)))
        self.speech_seconds.inc(int(round(analysis.speech_s)))
        yield AnalyzedRecording(record, dataclasses.replace(analysis, intervals=[]), out_path)


class AnalyzeAudio(beam.PTransform):
    """ManifestRecords -> AnalyzedRecordings with speech-only PCM under the temp folder (+ `rejected`)."""

    def __init__(self, config: BuildConfig, temp_dir: str):
        super().__init__()
        self.fn = AnalyzeAudioFn(config, temp_dir)

    def expand(self, records):
        out = (records
               | "Spread" >> beam.Reshuffle()
               | "DecodeAndStrip" >> beam.ParDo(self.fn).with_outputs(REJECTED, main="analyzed"))
        return {"analyzed": out.analyzed, REJECTED: out[REJECTED]}


# ---------------------------------------------------------------------------------------------
# 2b. The acoustic audit (pipelines.audit): one voice per recording, the right voice per speaker, quality
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AuditedRecording:
    """An analysed recording with what the audit measured on its speech (no second decode: the windows are read
    from the speech file AnalyzeAudio wrote)."""

    analyzed: AnalyzedRecording
    voices: Optional[audit.VoiceCount] = None
    embedding: Optional[object] = None  # unit numpy vector, None without --audit-model
    fingerprint: Optional[object] = None  # audit.fingerprint: first and last window embeddings


class EmbedRecordingFn(beam.DoFn):
    """Embed evenly spread windows of a recording's speech and count the voices among them."""

    def __init__(self, config: BuildConfig):
        self.config = config

    def setup(self):
        from pipelines.embedding import WindowEmbedder

        process_lifecycle.fast_exit()
        self.embedder = WindowEmbedder(self.config.audit.model)
        self.recordings = Metrics.counter(NAMESPACE, "audit_recordings")

    def process(self, analyzed: AnalyzedRecording):
        from pipelines.embedding import embed_speech

        with FileSystems.open(analyzed.speech_path, mime_type="application/octet-stream",
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            voices, embedding, fp = embed_speech(self.embedder, self.config.audit.checks,
                                                 analyzed.analysis.speech_samples,
                                                 lambda start, n: speech_file.read_window(f, start, n))
        self.recordings.inc()
        yield AuditedRecording(analyzed, voices, embedding, fp)


def audit_verdicts(audited: List[AuditedRecording], config: BuildConfig):
    """Over every recording at once: quality gates, one voice, the right voice (per speaker), duplicates (the same
    PCM, or the same audio re-encoded, under another id). Yields the kept AnalyzedRecordings, `audit` lines (dicts
    of OUT/audit.jsonl) and, under --audit-policy reject, `rejected` Rejections for the rejected recordings."""
    checks = config.audit.checks
    reasons: Dict[str, List[str]] = {a.analyzed.record.id: [] for a in audited}
    extra: Dict[str, Dict] = {a.analyzed.record.id: {} for a in audited}
    by_speaker: Dict[str, List[AuditedRecording]] = {}
    for a in audited:
        rec_id = a.analyzed.record.id
        by_speaker.setdefault(a.analyzed.record.speaker, []).append(a)
        if a.voices is not None and a.voices.voices >= 2:
            reasons[rec_id].append("multi_speaker")
        if a.analyzed.analysis.quality is not None:
            measured = quality.Quality.from_json(a.analyzed.analysis.quality)
            reasons[rec_id] += quality.reasons(measured, config.audit.gates)
            extra[rec_id]["quality"] = measured.to_json()
    for speaker, group in sorted(by_speaker.items()):
        group = [a for a in sorted(group, key=lambda a: a.analyzed.record.id) if a.embedding is not None]
        if not group:
            continue
        sims = audit.speaker_mismatches([a.analyzed.record.id for a in group],
                                        [a.embedding for a in group], checks)
        for rec_id, sim in sims.items():
            extra[rec_id]["speaker_similarity"] = None if sim is None else round(sim, 4)
        for rec_id in audit.speaker_verdicts(sims, checks):
            reasons[rec_id].append("speaker_mismatch")
    exact = planning.duplicate_audio((a.analyzed.record.id, a.analyzed.analysis.pcm_sha256) for a in audited)
    near = audit.near_duplicates([(a.analyzed.record.id, a.analyzed.record.speaker, a.analyzed.analysis.speech_samples,
                                   a.embedding, a.fingerprint) for a in audited if a.analyzed.record.id not in exact])
    for rec_id, kept in sorted({**near, **exact}.items()):
        reasons[rec_id].append("duplicate_audio")
        extra[rec_id]["duplicate_of"] = kept
    for a in sorted(audited, key=lambda a: a.analyzed.record.id):
        r = a.analyzed.record
        codes = sorted(set(reasons[r.id]), key=audit.REASONS.index)
        line = {"id": r.id, "speaker": r.speaker, "verdict": audit.verdict(codes), "reasons": codes,
                "speech_seconds": round(a.analyzed.analysis.speech_s, 3)}
        if a.voices is not None:
            line.update(a.voices.to_json())
        line.update(extra[r.id])
        yield pvalue.TaggedOutput("audit", line)
        # the same PCM under two ids is removed by PlanDataset whatever the policy (no audio in two splits)
        if line["verdict"] == "reject" and config.audit.policy == "reject" and r.id not in exact:
            yield pvalue.TaggedOutput(REJECTED, reject_record(r, "audit", codes[0], audit.describe(line)))
            delete_quietly(a.analyzed.speech_path)
        else:
            yield a.analyzed


class AuditRecordings(beam.PTransform):
    """AnalyzedRecordings -> the ones the audit keeps, `audit` lines, `rejected`."""

    def __init__(self, config: BuildConfig):
        super().__init__()
        self.config = config

    def expand(self, analyzed):
        if self.config.audit.model:
            audited = (analyzed
                       | "Spread" >> beam.Reshuffle()
                       | "Embed" >> beam.ParDo(EmbedRecordingFn(self.config)))
        else:
            audited = analyzed | "Measured" >> beam.Map(AuditedRecording)
        out = (audited
               | "Metadata" >> beam.combiners.ToList()
               | "Verdicts" >> beam.FlatMap(audit_verdicts, self.config).with_outputs(
                   REJECTED, "audit", main="kept"))
        return {"analyzed": out.kept, "audit": out.audit, REJECTED: out[REJECTED]}


# ---------------------------------------------------------------------------------------------
# 3. Caps, minimums and split (on small metadata only)
# ---------------------------------------------------------------------------------------------
def apply_plan(analyzed: List[AnalyzedRecording], config: BuildConfig):
    """Over every recording at once: the same audio under several ids is kept once (the others are
    `duplicate_audio` rejections, so no audio can reach two splits), then planning.make_plan: PlannedRecordings,
    `expected` counts, `rejected`."""
    by_id = {a.record.id: a for a in analyzed}
    dupes = planning.duplicate_audio((a.record.id, a.analysis.pcm_sha256) for a in analyzed)
    for rec_id, kept in sorted(dupes.items()):
        dup, original = by_id[rec_id], by_id[kept]
        yield pvalue.TaggedOutput(REJECTED, reject_record(
            dup.record, "plan", "duplicate_audio",
            f"the same decoded audio as {kept} (speaker {original.record.speaker}, {original.record.path})"))
        delete_quietly(dup.speech_path)
    analyzed = [a for a in analyzed if a.record.id not in dupes]
    entries = [planning.Entry(a.record.id, a.record.speaker, a.record.recording, a.analysis.speech_samples)
               for a in analyzed]
    assignments, rejects = planning.make_plan(entries, config)
    for rec_id, reason, message in rejects:
        yield pvalue.TaggedOutput(REJECTED, reject_record(by_id[rec_id].record, "plan", reason, message))
        delete_quietly(by_id[rec_id].speech_path)
    yield pvalue.TaggedOutput("expected", planning.expected_segments(assignments, config.split_fractions))
    for a in assignments:
        yield PlannedRecording(by_id[a.id], a.split, a.max_segments, round(a.seconds, 4))


class PlanDataset(beam.PTransform):
    """AnalyzedRecordings -> PlannedRecordings, `expected` segments per split, `rejected`."""

    def __init__(self, config: BuildConfig):
        super().__init__()
        self.config = config

    def expand(self, analyzed):
        out = (analyzed
               | "Metadata" >> beam.combiners.ToList()
               | "Plan" >> beam.FlatMap(apply_plan, self.config).with_outputs(REJECTED, "expected", main="planned"))
        return {"planned": out.planned, "expected": out.expected, REJECTED: out[REJECTED]}


# ---------------------------------------------------------------------------------------------
# 4. Segments
# ---------------------------------------------------------------------------------------------
class CutSegmentsFn(beam.DoFn):
    """A planned recording -> its segments (dicts of metadata + int16 PCM), read back from the temp folder."""

    def __init__(self, config: BuildConfig):
        self.config = config

    def setup(self):
        self.segmentation = self.config.segmentation
        self.segments = Metrics.counter(NAMESPACE, "segments")

    def process(self, planned: PlannedRecording):
        analyzed, record = planned.analyzed, planned.analyzed.record
        samples = analyzed.analysis.speech_samples
        with FileSystems.open(analyzed.speech_path, mime_type="application/octet-stream",
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            source_map = SourceMap(speech_file.read_intervals(f, samples))
            pcm_chunks = speech_file.iter_speech(f, samples)
            for start, pcm, valid in self.segmentation.cut(pcm_chunks, limit=planned.max_segments):
                seg_id = segment_id(record.id, start)
                split = planned.split or planning.segment_split(seg_id, self.config.split_fractions,
                                                                self.config.split_seed)
                self.segments.inc()
                yield examples.segment_item(record, record.id, seg_id, split, pcm, start / schema.SAMPLE_RATE,
                                            source_map(start) / schema.SAMPLE_RATE, valid)


class CutSegments(beam.PTransform):
    def __init__(self, config: BuildConfig):
        super().__init__()
        self.fn = CutSegmentsFn(config)

    def expand(self, planned):
        return planned | "Spread" >> beam.Reshuffle() | "Cut" >> beam.ParDo(self.fn)


# ---------------------------------------------------------------------------------------------
# 5. Features (batched TensorFlow) and tf.train.Example
# ---------------------------------------------------------------------------------------------
class FeaturizeFn(beam.DoFn):
    """A batch of segments -> (split, sort key, shard meta, serialized tf.train.Example) per segment."""

    def __init__(self, config: BuildConfig):
        self.config = config

    def setup(self):
        process_lifecycle.fast_exit()
        from pipelines.features import BatchFeaturizer

        self.features = tuple(self.config.features)
        self.featurizer = BatchFeaturizer(self.config.feature_config, self.features)

    def process(self, batch: List[Dict]):
        for item, example in zip(batch, examples.featurize_batch(self.featurizer, batch, self.features)):
            yield item["split"], planning.stable_hash(item[schema.ID]), examples.shard_meta(item), example


class ComputeFeatures(beam.PTransform):
    """Segments -> examples, one TensorFlow call per batch of up to `batch_size` segments."""

    def __init__(self, config: BuildConfig, batch_size: int = 64):
        super().__init__()
        self.config, self.batch_size = config, batch_size

    def expand(self, segments):
        return (segments
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
                | "Featurize" >> beam.ParDo(FeaturizeFn(self.config)))


# ---------------------------------------------------------------------------------------------
# 6. Deterministic sharded TFRecord writer
# ---------------------------------------------------------------------------------------------
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
                files.append(stack.enter_context(open_seekable(path)))
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
                framed = shards.tfrecord_frame(f.read(size))
                handle.write(framed)
                written += len(framed)
                _, speaker, recording, rec_id, valid = shards.parse_shard_meta(meta)
                entry = recordings.setdefault(rec_id, [speaker, recording, 0, 0])
                entry[2] += 1
                entry[3] += valid
        Metrics.counter(NAMESPACE, f"examples_{split}").inc(len(index))
        return {"split": split, "shard": shard, "file": name, "examples": len(index),
                "uncompressed_bytes": written, "recordings": recordings}


@contextlib.contextmanager
def open_seekable(path: str):
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
    """((split, key, meta, example), shards per split) -> TFRecord shards in the output folder; returns
    per-shard statistics."""

    def __init__(self, config: BuildConfig, output_dir: str, temp_dir: str):
        super().__init__()
        self.output_dir, self.temp_dir, self.gzip = output_dir, temp_dir, config.gzip

    def expand(self, examples_and_counts):
        examples_pc, counts = examples_and_counts
        counts_view = beam.pvalue.AsSingleton(counts)
        return (examples_pc
                | "Spill" >> beam.ParDo(SpillFn(self.temp_dir), counts_view)
                | "GroupByShard" >> beam.GroupByKey()
                | "Merge" >> beam.ParDo(MergeShardFn(self.output_dir, self.gzip), counts_view))


# ---------------------------------------------------------------------------------------------
# Small JSON outputs for the finalize step
# ---------------------------------------------------------------------------------------------
def write_json(value, path: str) -> None:
    with FileSystems.create(path, mime_type="application/json") as f:
        f.write(json.dumps(value, sort_keys=True).encode("utf-8"))


def write_json_list(items: Iterable, path: str, sort_key: Optional[Callable] = None,
                    to_json: Optional[Callable] = None) -> None:
    items = sorted(items, key=sort_key) if sort_key else list(items)
    write_json([to_json(x) for x in items] if to_json else items, path)


class WriteJsonList(beam.PTransform):
    """Collect a small PCollection and write it as one sorted JSON list (deterministic)."""

    def __init__(self, path: str, sort_key: Optional[Callable] = None, to_json: Optional[Callable] = None):
        super().__init__()
        self.path, self.sort_key, self.to_json = path, sort_key, to_json

    def expand(self, pcoll):
        return (pcoll
                | "Collect" >> beam.combiners.ToList()
                | "Write" >> beam.Map(write_json_list, self.path, self.sort_key, self.to_json))
