"""After the Beam job: the builder's accounting. speakers.tsv, dataset.json (counts, shapes, split audit)
and errors/, from the small JSON files the job left in OUT/.tmp; then the report, the copy of the manifest and
the dataset card (README.md, sources.tsv: pipelines.card), then OUT/.tmp goes.

It checks that every input is accounted for and that what was written honours the split property (an
audit of the shards, not of the plan). Plain Python; files through Beam's FileSystems (local or gs://).
"""
from __future__ import annotations

import collections
import io
import json
import os
from typing import Dict, List, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines import card, code_version, dataset_page, report, schema, tfds_info
from pipelines.config import BuildConfig
from pipelines.decode import decoder_build
from pipelines.dataset_meta import AuditSummary, Counts, DatasetMeta, SplitAudit, SplitInfo
from pipelines.manifest import FIELDS, is_blank
from pipelines.paths import is_remote, join
from pipelines.rejection import Rejection

# what the job leaves in OUT/.tmp for this step (pipelines.build_dataset writes them)
PLANNED_JSON = "planned.json"  # one summary per recording with segments
SHARDS_JSON = "shards.json"  # per-shard statistics from the merge
SHARD_COUNTS_JSON = "shard_counts.json"  # shards per split
REJECTED_JSON = "rejected.json"  # Rejection records of every stage
PREREJECTED_JSON = "prerejected.json"  # files of --audio-dir that never became manifest lines
AUDIT_JSON = "audit.json"  # the audit's lines (pipelines.transforms.audit_verdicts)


class IncompleteBuild(RuntimeError):
    """The job's outputs do not account for every input: a bug, never a user error."""


def read_json(path: str, default=None):
    if not FileSystems.exists(path):
        return default
    with FileSystems.open(path) as f:
        return json.loads(f.read())


def write_bytes(path: str, data: bytes, mime: str = "application/octet-stream") -> None:
    with FileSystems.create(path, mime_type=mime) as f:
        f.write(data)


COPY_BLOCK = 1 << 20


def copy_manifest(src: str, dest: str) -> None:
    """OUT/manifest.jsonl: the manifest's bytes (decompressed when it is .gz), streamed."""
    with FileSystems.open(src, compression_type=CompressionTypes.AUTO) as f, \
            FileSystems.create(dest, mime_type="application/jsonl",
                               compression_type=CompressionTypes.UNCOMPRESSED) as g:
        for block in iter(lambda: f.read(COPY_BLOCK), b""):
            g.write(block)


def manifest_extras(path: str, ids: set) -> Dict[str, Dict]:
    """The extra (non-contract) fields of the first manifest line of each id in `ids` (the line the builder
    kept), e.g. a YouTube channel's name for attribution; lines that are not JSON objects are skipped (they
    are rejections already)."""
    extras: Dict[str, Dict] = {}
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        for raw in f:
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):  # not a record (rejected as invalid_json, as deep nesting is)
                continue
            if isinstance(data, dict) and data.get("id") in ids and data["id"] not in extras:
                extras[data["id"]] = {k: v for k, v in data.items() if k not in FIELDS}
    return extras


def same_path(a: str, b: str) -> bool:
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def read_lines(path: str):
    """The text lines of a file, or None when it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8", "replace").splitlines()


def count_manifest_lines(path: str) -> int:
    """Inputs of a manifest: its non-blank lines, by the builder's own definition (manifest.is_blank)."""
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
        return sum(1 for line in f if not is_blank(line))


def split_audit(split_by: str, shard_stats: List[Dict], planned: List[Dict]) -> SplitAudit:
    """Prove the split property from what was written (not from what was planned)."""
    rec_splits: Dict[str, set] = collections.defaultdict(set)
    spk_splits: Dict[str, set] = collections.defaultdict(set)
    for s in shard_stats:
        for rec_id, (speaker, recording, _n, _valid) in s["recordings"].items():
            rec_splits[recording].add(s["split"])
            spk_splits[speaker].add(s["split"])
    group_of = {p["recording"]: p.get("group") or "" for p in planned}
    grp_splits: Dict[str, set] = collections.defaultdict(set)
    for rec, splits in rec_splits.items():
        if group_of.get(rec):
            grp_splits[group_of[rec]] |= splits
    # the same audio under several ids (a copy, a re-upload): by the digest of the decoded PCM
    digest_of = {p["id"]: p.get("audio_sha256") or "" for p in planned}
    audio_splits: Dict[str, set] = collections.defaultdict(set)
    for s in shard_stats:
        for rec_id in s["recordings"]:
            if digest_of.get(rec_id):
                audio_splits[digest_of[rec_id]].add(s["split"])
    multi_audio = sorted(d for d, s in audio_splits.items() if len(s) > 1)
    multi_rec = sorted(r for r, s in rec_splits.items() if len(s) > 1)
    multi_spk = sorted(k for k, s in spk_splits.items() if len(s) > 1)
    no_train = sorted(k for k, s in spk_splits.items() if "train" not in s)
    if split_by == "recording":
        prop = "no recording and no audio (by content) in more than one split; every speaker in train"
        holds = not multi_rec and not no_train and not multi_audio
    elif split_by == "speaker":
        prop, holds = "no speaker and no audio (by content) in more than one split (open-set)", not multi_spk and not multi_audio
    else:
        prop, holds = "none: segments of one recording may fall in different splits (Keras-example mode)", True
    return SplitAudit(
        split_by=split_by, property=prop, holds=holds, recordings=len(rec_splits), speakers=len(spk_splits),
        recordings_in_more_than_one_split=len(multi_rec), speakers_in_more_than_one_split=len(multi_spk),
        speakers_missing_from_train=len(no_train), audio_in_more_than_one_split=len(multi_audio),
        groups_in_more_than_one_split=sum(1 for s in grp_splits.values() if len(s) > 1),
        examples={"recordings_in_more_than_one_split": multi_rec[:10], "speakers_missing_from_train": no_train[:10],
                  "audio_in_more_than_one_split": multi_audio[:10]})


def _complete_shards(out: str, shard_stats: List[Dict], counts_per_split: Dict[str, int], gzip: bool) -> List[Dict]:
    """Every shard index exists, even one that received no example (an empty file)."""
    present = {(s["split"], s["shard"]) for s in shard_stats}
    for split, n in sorted(counts_per_split.items()):
        for i in range(n):
            if (split, i) not in present:
                path = join(out, schema.shard_name(split, i, n, gzip))
                handle = FileSystems.create(path, compression_type="gzip" if gzip else "uncompressed")
                handle.close()
                shard_stats.append({"split": split, "shard": i, "file": os.path.basename(path), "examples": 0,
                                    "uncompressed_bytes": 0, "recordings": {}})
    return sorted(shard_stats, key=lambda s: (schema.SPLITS.index(s["split"]), s["shard"]))


def _check_written(planned: List[Dict], shard_stats: List[Dict]) -> None:
    """Every planned recording was written with exactly its planned number of segments."""
    written: Dict[str, int] = collections.Counter()
    for s in shard_stats:
        for rec_id, (_spk, _rec, n, _valid) in s["recordings"].items():
            written[rec_id] += n
    short = [p["id"] for p in planned if written.get(p["id"], 0) != p["max_segments"]]
    if short:
        raise IncompleteBuild(f"{len(short)} recording(s) were not written as planned, e.g. {short[:3]}")


def written_by_id(shard_stats: List[Dict]) -> Dict[str, Dict[str, Tuple[int, float]]]:
    """What the shards hold of each manifest id: {split: (examples, seconds of real audio)}."""
    out: Dict[str, Dict[str, Tuple[int, float]]] = {}
    for s in shard_stats:
        for rec_id, (_spk, _rec, n, valid) in s["recordings"].items():
            n0, sec0 = out.setdefault(rec_id, {}).get(s["split"], (0, 0.0))
            out[rec_id][s["split"]] = (n0 + n, sec0 + valid / schema.SAMPLE_RATE)
    return out


def _splits_and_speakers(shard_stats: List[Dict], segment_s: float
                         ) -> Tuple[Dict[str, SplitInfo], Dict[str, Dict[str, Tuple[float, int]]]]:
    """Per-split totals, and per speaker {split: (seconds of real audio, segments)}."""
    splits: Dict[str, SplitInfo] = {}
    speaker_rows: Dict[str, Dict[str, Tuple[float, int]]] = {}
    for split in schema.SPLITS:
        stats = [s for s in shard_stats if s["split"] == split]
        spk_seconds: Dict[str, float] = collections.Counter()
        spk_segments: Dict[str, int] = collections.Counter()
        recs = set()
        valid_samples = 0
        for s in stats:
            for rec_id, (speaker, recording, n, valid) in s["recordings"].items():
                spk_seconds[speaker] += valid / schema.SAMPLE_RATE
                spk_segments[speaker] += n
                recs.add(recording)
                valid_samples += valid
        examples = sum(s["examples"] for s in stats)
        splits[split] = SplitInfo(
            examples=examples, shards=len(stats), files=tuple(s["file"] for s in stats),
            shard_examples=tuple(s["examples"] for s in stats),
            seconds=round(examples * segment_s, 3), speech_seconds=round(valid_samples / schema.SAMPLE_RATE, 3),
            speakers=len(spk_segments), recordings=len(recs),
            bytes_uncompressed=sum(s["uncompressed_bytes"] for s in stats))
        for speaker in spk_segments:
            speaker_rows.setdefault(speaker, {})[split] = (round(spk_seconds[speaker], 3), spk_segments[speaker])
    return splits, speaker_rows


def speakers_tsv(speaker_rows: Dict[str, Dict[str, Tuple[float, int]]], names: Dict[str, str],
                 labels: Dict[str, int]) -> str:
    """speakers.tsv: key, name, label (index among train speakers, -1 if none), seconds and segments per split."""
    tsv = io.StringIO()
    cols = ["speaker", "name", "label"] + [f"{s}_{m}" for s in schema.SPLITS for m in ("seconds", "segments")]
    tsv.write("\t".join(cols) + "\n")
    for speaker in sorted(speaker_rows):
        row = speaker_rows[speaker]
        vals = [speaker, names.get(speaker, "").replace("\t", " "), str(labels.get(speaker, -1))]
        for s in schema.SPLITS:
            sec, n = row.get(s, (0.0, 0))
            vals += [f"{sec:.3f}", str(n)]
        tsv.write("\t".join(vals) + "\n")
    return tsv.getvalue()


def recordings_jsonl(planned: List[Dict]) -> bytes:
    """recordings.jsonl: the summary of every recording with segments (PlannedRecording.summary: source path,
    speaker, language, decoded/speech/used seconds, input sample rate and channels, split), sorted by id."""
    rows = sorted(planned, key=lambda p: p["id"])
    return "".join(json.dumps(p, sort_keys=True, ensure_ascii=False) + "\n" for p in rows).encode("utf-8")


def write_errors(out: str, rejected: List[Rejection]) -> None:
    """errors/<stage>.jsonl, one Rejection per line, sorted."""
    by_stage: Dict[str, List[Rejection]] = collections.defaultdict(list)
    for r in rejected:
        by_stage[r.stage].append(r)
    for stage, items in sorted(by_stage.items()):
        items.sort(key=Rejection.sort_key)
        body = "".join(json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for r in items)
        write_bytes(join(out, schema.ERRORS_DIR, f"{stage}.jsonl"), body.encode("utf-8"), "application/jsonl")


def write_audit(out: str, lines: List[Dict], config: BuildConfig) -> AuditSummary:
    """OUT/audit.jsonl (sorted by id) and its figures; nothing when the audit was off."""
    if not config.audit.enabled:
        return AuditSummary()
    lines = sorted(lines, key=lambda d: d["id"])
    body = "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d in lines)
    write_bytes(join(out, schema.AUDIT_JSONL), body.encode("utf-8"), "application/jsonl")
    model_id = ""
    if config.audit.model:
        from pipelines.model_info import read_model_info

        model_id = read_model_info(config.audit.model).model_id
    return AuditSummary(
        ran=True, speaker_checks=bool(config.audit.model), audit_model_id=model_id, recordings=len(lines),
        verdicts=dict(collections.Counter(d["verdict"] for d in lines)),
        reasons=dict(collections.Counter(r for d in lines for r in d["reasons"])),
        speakers_checked=len({d["speaker"] for d in lines if d.get("speaker_similarity") is not None}),
        speakers_with_findings=len({d["speaker"] for d in lines if d["verdict"] != "keep"}))


def finalize(out: str, manifest_path: str, config: BuildConfig) -> DatasetMeta:
    """Write speakers.tsv, errors/, dataset.json and report/ (README.md, index.html) for the job that just
    ran into `out`."""
    temp = join(out, schema.TEMP_DIR)
    planned = read_json(join(temp, PLANNED_JSON), [])
    prerejected = [Rejection.from_json(r) for r in read_json(join(temp, PREREJECTED_JSON), [])]
    rejected = [Rejection.from_json(r) for r in read_json(join(temp, REJECTED_JSON), [])] + prerejected
    shard_stats = _complete_shards(out, read_json(join(temp, SHARDS_JSON), []),
                                   read_json(join(temp, SHARD_COUNTS_JSON), {}), config.gzip)
    _check_written(planned, shard_stats)

    copy = join(out, schema.MANIFEST_JSONL)  # the manifest this build read, kept beside the dataset
    if not same_path(manifest_path, copy):  # --audio-dir: the builder derived it there already
        copy_manifest(manifest_path, copy)
    counts = Counts(  # inputs: every manifest line, and every file of --audio-dir that never became one
        inputs=count_manifest_lines(copy) + len(prerejected), recordings_with_segments=len(planned),
        rejected=len(rejected),
        rejected_by_reason=dict(sorted(collections.Counter(r.reason for r in rejected).items())),
        rejected_by_stage=dict(sorted(collections.Counter(r.stage for r in rejected).items())))

    splits, speaker_rows = _splits_and_speakers(shard_stats, config.segment_samples / schema.SAMPLE_RATE)
    train_speakers = schema.label_order({k: row["train"][1] for k, row in speaker_rows.items() if "train" in row})
    labels = {k: i for i, k in enumerate(train_speakers)}
    names = {p["speaker"]: p.get("speaker_name", "") for p in planned}
    write_bytes(join(out, schema.SPEAKERS_TSV), speakers_tsv(speaker_rows, names, labels).encode("utf-8"),
                "text/tab-separated-values")
    write_errors(out, rejected)
    audit = write_audit(out, read_json(join(temp, AUDIT_JSON), []), config)

    meta = DatasetMeta(
        name=os.path.basename(out.rstrip("/")), code_version=code_version(), config=config,
        decoder_build=decoder_build(config.decoder),  # this process's; workers install the same pinned wheel
        feature_config=config.feature_config, splits=splits, counts=counts,
        split_audit=split_audit(config.split_by, shard_stats, planned),
        num_speakers=len(speaker_rows), num_train_speakers=len(train_speakers),
        decoded_seconds=round(sum(p.get("decoded_s", 0) for p in planned), 3),
        speech_seconds=round(sum(p.get("used_s", 0) for p in planned), 3), audit=audit)
    write_bytes(join(out, schema.RECORDINGS_JSONL), recordings_jsonl(planned), "application/jsonl")
    for name, data in tfds_info.tfds_files(meta).items():
        write_bytes(join(out, name), data, "application/json")
    write_bytes(join(out, schema.DATASET_JSON), meta.to_text().encode("utf-8"), "application/json")
    for name, data in report.render_report(meta, planned, rejected, speaker_rows).items():
        write_bytes(join(out, schema.REPORT_DIR, name), data, "image/png" if name.endswith(".png") else "text/markdown")
    extras = manifest_extras(copy, {p["id"] for p in planned})
    audit_lines = read_lines(join(out, schema.AUDIT_JSONL))
    for name, data in card.render(meta, planned, written_by_id(shard_stats), extras, audit_lines).items():
        write_bytes(join(out, name), data, "text/tab-separated-values" if name.endswith(".tsv") else "text/markdown")
    dataset_page.write_provenance(out, planned)
    dataset_page.write_page(out)  # report/index.html and its samples, from the files written above
    remove_tree(temp)
    return meta


def remove_tree(path: str) -> None:
    if "://" not in path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    found = [m.path for m in FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list]
    if found:
        FileSystems.delete(found)
