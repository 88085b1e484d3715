"""The dataset's human-readable report: report/README.md with PNG plots (recording durations, seconds
per speaker, rejects by reason), and the summary the builder prints.

Renders only: it returns the files' bytes and pipelines.finalize writes them. No Beam.
"""
from __future__ import annotations

import io
import os
from typing import Dict, List, Tuple

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta
from pipelines.rejection import Rejection

MAX_REJECT_ROWS = 200


def render_report(meta: DatasetMeta, planned: List[Dict], rejected: List[Rejection],
                  speaker_rows: Dict[str, Dict[str, Tuple[float, int]]]) -> Dict[str, bytes]:
    """{file name under report/: bytes}: README.md and its three PNG plots."""
    # matplotlib's Figure API: no pyplot (its import costs about a second of the job's start-up) and
    # no global figure state; a standalone Figure saves PNG through the Agg canvas.
    from matplotlib.figure import Figure

    files: Dict[str, bytes] = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
        files[name] = buf.getvalue()

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

    reasons = dict(meta.counts.rejected_by_reason)
    fig = Figure(figsize=(6, 0.35 * max(1, len(reasons)) + 1.2))
    ax = fig.subplots()
    ax.barh(list(reasons) or ["(none)"], list(reasons.values()) or [0])
    ax.set_xlabel("recordings")
    ax.set_title("Rejected inputs by reason")
    save(fig, "rejects_by_reason.png")

    lines = [f"# Dataset report: {meta.name}", "", summary_text(meta), "",
             "![durations](durations.png)", "", "![seconds per speaker](seconds_per_speaker.png)", "",
             "![rejects](rejects_by_reason.png)", "", "## Rejected inputs", ""]
    if rejected:
        lines += ["| stage | reason | id | path | message |", "| --- | --- | --- | --- | --- |"]
        for r in sorted(rejected, key=lambda r: (r.stage, r.reason, r.id))[:MAX_REJECT_ROWS]:
            lines.append(f"| {r.stage} | {r.reason} | {r.id} | {os.path.basename(r.path)} | "
                         f"{r.message.replace('|', '/')[:120]} |")
        if len(rejected) > MAX_REJECT_ROWS:
            lines.append(f"| … | {len(rejected) - MAX_REJECT_ROWS} more in errors/ | | | |")
    else:
        lines.append("None.")
    files["README.md"] = ("\n".join(lines) + "\n").encode("utf-8")
    return files


def summary_text(meta: DatasetMeta) -> str:
    """Counts, speakers, hours, the split audit and a per-split table (markdown)."""
    c = meta.counts
    a = meta.split_audit
    rows = ["| split | examples | shards | seconds | speakers | recordings |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for split in schema.SPLITS:
        s = meta.split(split)
        rows.append(f"| {split} | {s.examples} | {s.shards} | {s.seconds:.0f} | {s.speakers} | {s.recordings} |")
    reasons = ", ".join(f"{k} {v}" for k, v in c.rejected_by_reason.items()) or "none"
    return "\n".join([
        f"Inputs: {c.inputs} = {c.recordings_with_segments} recordings with segments + {c.rejected} rejected "
        f"({reasons}){'' if c.add_up else '  [COUNTS DO NOT ADD UP]'}",
        f"Speakers: {meta.num_speakers} ({meta.num_train_speakers} in train); audio decoded "
        f"{meta.decoded_seconds / 3600:.2f} h, speech kept {meta.speech_seconds / 3600:.2f} h; "
        f"features {', '.join(meta.features)}",
        f"Split by {a.split_by}: {a.property}: {'holds' if a.holds else 'VIOLATED'}",
        "", *rows,
    ])
