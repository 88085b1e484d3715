"""After the Beam job: speakers.tsv, dataset.json (counts, shapes, split audit), errors/ and report/.

Reads only the small JSON files the job left in OUT/.tmp, checks that every input is accounted for
and that what was written honours the split property, then removes OUT/.tmp.
"""
from __future__ import annotations

import collections
import io
import json
import os
from typing import Dict, List

from apache_beam.io.filesystems import FileSystems

from pipelines import schema
from pipelines.paths import join

from importlib.metadata import version as _dist_version


def code_version() -> str:
    from pipelines import __version__

    try:
        return _dist_version("speaker-datasets")
    except Exception:
        return __version__


def _read_json(path: str, default=None):
    if not FileSystems.exists(path):
        return default
    with FileSystems.open(path) as f:
        return json.loads(f.read())


def _write_bytes(path: str, data: bytes, mime: str = "application/octet-stream") -> None:
    with FileSystems.create(path, mime_type=mime) as f:
        f.write(data)


def _count_manifest_lines(path: str) -> int:
    with FileSystems.open(path) as f:
        return sum(1 for line in f if line.strip())


class IncompleteBuild(RuntimeError):
    """The job's outputs do not account for every input: a bug, never a user error."""


def split_audit(split_by: str, shard_stats: List[Dict], planned: List[Dict]) -> Dict:
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
    multi_rec = sorted(r for r, s in rec_splits.items() if len(s) > 1)
    multi_spk = sorted(k for k, s in spk_splits.items() if len(s) > 1)
    no_train = sorted(k for k, s in spk_splits.items() if "train" not in s)
    audit = {
        "split_by": split_by,
        "recordings": len(rec_splits), "speakers": len(spk_splits),
        "recordings_in_more_than_one_split": len(multi_rec),
        "speakers_in_more_than_one_split": len(multi_spk),
        "speakers_missing_from_train": len(no_train),
        "groups_in_more_than_one_split": sum(1 for s in grp_splits.values() if len(s) > 1),
        "examples": {"recordings_in_more_than_one_split": multi_rec[:10],
                     "speakers_missing_from_train": no_train[:10]},
    }
    if split_by == "recording":
        audit["property"] = "no recording in more than one split; every speaker in train"
        audit["holds"] = not multi_rec and not no_train
    elif split_by == "speaker":
        audit["property"] = "no speaker in more than one split (open-set)"
        audit["holds"] = not multi_spk
    else:
        audit["property"] = "none: segments of one recording may fall in different splits (Keras-example mode)"
        audit["holds"] = True
    return audit


def finalize(out: str, manifest_path: str, config: Dict, fcfg: schema.FeatureConfig, features,
             gzip: bool = False) -> Dict:
    temp = join(out, schema.TEMP_DIR)
    planned = _read_json(join(temp, "planned.json"), [])
    shard_stats = _read_json(join(temp, "shards.json"), [])
    counts_per_split = _read_json(join(temp, "shard_counts.json"), {})
    rejected = _read_json(join(temp, "rejected.json"), []) + _read_json(join(temp, "prerejected.json"), [])

    # every shard index exists, even one that received no example
    present = {(s["split"], s["shard"]) for s in shard_stats}
    for split, n in sorted(counts_per_split.items()):
        for i in range(n):
            if (split, i) not in present:
                path = join(out, schema.shard_name(split, i, n, gzip))
                handle = FileSystems.create(path, compression_type="gzip" if gzip else "uncompressed")
                handle.close()
                shard_stats.append({"split": split, "shard": i, "file": os.path.basename(path), "examples": 0,
                                    "uncompressed_bytes": 0, "recordings": {}})
    shard_stats.sort(key=lambda s: (schema.SPLITS.index(s["split"]), s["shard"]))

    # every planned recording was written with exactly its planned number of segments
    written_per_rec: Dict[str, int] = collections.Counter()
    for s in shard_stats:
        for rec_id, (_spk, _rec, n, _valid) in s["recordings"].items():
            written_per_rec[rec_id] += n
    short = [p["id"] for p in planned if written_per_rec.get(p["id"], 0) != p["max_segments"]]
    if short:
        raise IncompleteBuild(f"{len(short)} recording(s) were not written as planned, e.g. {short[:3]}")

    inputs = _count_manifest_lines(manifest_path) + sum(1 for r in rejected if r["stage"] == "manifest"
                                                        and r["reason"] == "not_audio")
    counts = {
        "inputs": inputs, "recordings_with_segments": len(planned), "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(collections.Counter(r["reason"] for r in rejected).items())),
        "rejected_by_stage": dict(sorted(collections.Counter(r["stage"] for r in rejected).items())),
    }
    counts["add_up"] = counts["inputs"] == counts["recordings_with_segments"] + counts["rejected"]

    seg_s = fcfg.segment_samples / schema.SAMPLE_RATE
    splits = {}
    speaker_rows: Dict[str, Dict] = {}
    names = {p["speaker"]: p.get("speaker_name", "") for p in planned}
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
        splits[split] = {
            "examples": examples, "shards": len(stats), "files": [s["file"] for s in stats],
            "seconds": round(examples * seg_s, 3), "speech_seconds": round(valid_samples / schema.SAMPLE_RATE, 3),
            "speakers": len(spk_segments), "recordings": len(recs),
            "bytes_uncompressed": sum(s["uncompressed_bytes"] for s in stats),
        }
        for speaker in spk_segments:
            row = speaker_rows.setdefault(speaker, {})
            row[split] = (round(spk_seconds[speaker], 3), spk_segments[speaker])
    train_speakers = schema.label_order({k: row["train"][1] for k, row in speaker_rows.items() if "train" in row})
    label = {k: i for i, k in enumerate(train_speakers)}

    tsv = io.StringIO()
    cols = ["speaker", "name", "label"] + [f"{s}_{m}" for s in schema.SPLITS for m in ("seconds", "segments")]
    tsv.write("\t".join(cols) + "\n")
    for speaker in sorted(speaker_rows):
        row = speaker_rows[speaker]
        vals = [speaker, names.get(speaker, "").replace("\t", " "), str(label.get(speaker, -1))]
        for s in schema.SPLITS:
            sec, n = row.get(s, (0.0, 0))
            vals += [f"{sec:.3f}", str(n)]
        tsv.write("\t".join(vals) + "\n")
    _write_bytes(join(out, schema.SPEAKERS_TSV), tsv.getvalue().encode("utf-8"), "text/tab-separated-values")

    by_stage: Dict[str, List[Dict]] = collections.defaultdict(list)
    for r in rejected:
        by_stage[r["stage"]].append(r)
    for stage, items in sorted(by_stage.items()):
        items.sort(key=lambda r: (r["id"], r.get("line") or 0, r["path"]))
        body = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in items)
        _write_bytes(join(out, schema.ERRORS_DIR, f"{stage}.jsonl"), body.encode("utf-8"), "application/jsonl")

    audit = split_audit(config["split_by"], shard_stats, planned)
    shapes = {k: list(v) for k, v in fcfg.shapes().items() if k in features}
    meta = {
        "name": os.path.basename(out.rstrip("/")),
        "code_version": code_version(),
        "config": config,
        "features": list(features),
        "feature_config": fcfg.to_json(),
        "feature_shapes": shapes,
        "feature_dtypes": {k: ("int16" if k == schema.AUDIO else "float32") for k in features},
        "sample_rate": schema.SAMPLE_RATE,
        "splits": splits,
        "num_speakers": len(speaker_rows),
        "num_train_speakers": len(train_speakers),
        "counts": counts,
        "split_audit": audit,
        "decoded_seconds": round(sum(p.get("decoded_s", 0) for p in planned), 3),
        "speech_seconds": round(sum(p.get("used_s", 0) for p in planned), 3),
    }
    _write_bytes(join(out, schema.DATASET_JSON),
                 (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"), "application/json")
    write_report(out, meta, planned, rejected, speaker_rows)
    _remove_tree(temp)
    return meta


def _remove_tree(path: str) -> None:
    if "://" not in path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    found = [m.path for m in FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list]
    if found:
        FileSystems.delete(found)


def write_report(out: str, meta: Dict, planned: List[Dict], rejected: List[Dict], speaker_rows: Dict) -> None:
    """report/README.md with PNG plots: recording durations, seconds per speaker, rejects by reason."""
    # matplotlib's Figure API: no pyplot (its import costs about a second of the job's start-up) and
    # no global figure state; a standalone Figure saves PNG through the Agg canvas.
    from matplotlib.figure import Figure

    rdir = join(out, schema.REPORT_DIR)

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
        _write_bytes(join(rdir, name), buf.getvalue(), "image/png")

    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    durations = [p.get("decoded_s", 0) for p in planned]
    speech = [p.get("speech_s", 0) for p in planned]
    if durations:
        ax.hist([durations, speech], bins=30, label=["decoded", "speech after stripping"])
        ax.legend()
    ax.set_xlabel("seconds per recording")
    ax.set_ylabel("recordings")
    ax.set_title("Recording durations")
    save(fig, "durations.png")

    speakers = sorted(speaker_rows)
    fig = Figure(figsize=(max(6, 0.25 * len(speakers) + 2), 3.5))
    ax = fig.subplots()
    bottom = [0.0] * len(speakers)
    for split in schema.SPLITS:
        vals = [speaker_rows[s].get(split, (0.0, 0))[0] for s in speakers]
        ax.bar(range(len(speakers)), vals, bottom=bottom, label=split)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(speakers)), [s[-18:] for s in speakers], rotation=90, fontsize=7)
    ax.set_ylabel("seconds of segments")
    ax.set_title("Seconds per speaker and split")
    ax.legend()
    save(fig, "seconds_per_speaker.png")

    reasons = meta["counts"]["rejected_by_reason"]
    fig = Figure(figsize=(6, 0.35 * max(1, len(reasons)) + 1.2))
    ax = fig.subplots()
    ax.barh(list(reasons) or ["(none)"], list(reasons.values()) or [0])
    ax.set_xlabel("recordings")
    ax.set_title("Rejected inputs by reason")
    save(fig, "rejects_by_reason.png")

    lines = [f"# Dataset report: {meta['name']}", "", summary_text(meta), "",
             "![durations](durations.png)", "", "![seconds per speaker](seconds_per_speaker.png)", "",
             "![rejects](rejects_by_reason.png)", "", "## Rejected inputs", ""]
    if rejected:
        lines += ["| stage | reason | id | path | message |", "| --- | --- | --- | --- | --- |"]
        for r in sorted(rejected, key=lambda r: (r["stage"], r["reason"], r["id"]))[:200]:
            lines.append(f"| {r['stage']} | {r['reason']} | {r['id']} | {os.path.basename(r['path'])} | "
                         f"{r['message'].replace('|', '/')[:120]} |")
        if len(rejected) > 200:
            lines.append(f"| … | {len(rejected) - 200} more in errors/ | | | |")
    else:
        lines.append("None.")
    _write_bytes(join(rdir, "README.md"), ("\n".join(lines) + "\n").encode("utf-8"), "text/markdown")


def summary_text(meta: Dict) -> str:
    c = meta["counts"]
    a = meta["split_audit"]
    rows = ["| split | examples | shards | seconds | speakers | recordings |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for split in schema.SPLITS:
        s = meta["splits"][split]
        rows.append(f"| {split} | {s['examples']} | {s['shards']} | {s['seconds']:.0f} | {s['speakers']} | {s['recordings']} |")
    reasons = ", ".join(f"{k} {v}" for k, v in c["rejected_by_reason"].items()) or "none"
    return "\n".join([
        f"Inputs: {c['inputs']} = {c['recordings_with_segments']} recordings with segments + {c['rejected']} rejected "
        f"({reasons}){'' if c['add_up'] else '  [COUNTS DO NOT ADD UP]'}",
        f"Speakers: {meta['num_speakers']} ({meta['num_train_speakers']} in train); audio decoded "
        f"{meta['decoded_seconds'] / 3600:.2f} h, speech kept {meta['speech_seconds'] / 3600:.2f} h; "
        f"features {', '.join(meta['features'])}",
        f"Split by {a['split_by']}: {a['property']}: {'holds' if a['holds'] else 'VIOLATED'}",
        "", *rows,
    ])
