"""The dataset's HTML report, OUT/report/index.html: headline figures, seconds per speaker (histogram and
CDF), one sortable row per speaker, rejects by stage and reason with examples, the audit's verdicts when
OUT/audit.jsonl exists, and a player for one sample segment per speaker (WAV files under report/audio/).

Rendered from the dataset's files only (dataset.json, speakers.tsv, errors/, report/provenance.json, the
shards, audit.jsonl), so it can be redrawn after the build, e.g. once an audit was written:

    python -m pipelines.dataset_page OUT

pipelines.finalize calls `write_page` at the end of every build. Its cost is bounded whatever the number
of speakers: fixed-size SVG charts, one table row per speaker, and samples for the first
MAX_AUDIO_SPEAKERS speakers from at most MAX_SCAN_EXAMPLES examples of the shards. Files through Beam's
FileSystems (local or gs://); TensorFlow only to parse the sampled examples.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import json
import statistics
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines import html_page as hp
from pipelines import schema
from pipelines.dataset_meta import DatasetError, DatasetMeta
from pipelines.decode import write_wav
from pipelines.paths import join
from pipelines.rejection import Rejection
from pipelines.examples import parse_example
from pipelines.shards import iter_tfrecords

INDEX_HTML = "index.html"  # report/index.html
AUDIO_DIR = "audio"  # report/audio/<NNN>-<safe name>.wav
PROVENANCE_JSON = "provenance.json"  # report/provenance.json: per speaker, recordings, sources, licenses
MAX_AUDIO_SPEAKERS = 200  # players for the first speakers by key
MAX_SCAN_EXAMPLES = 5000  # examples read from the shards at most to find them (about 1 ms each)
MAX_REJECT_EXAMPLES = 5  # example ids and messages per (stage, reason)
MAX_AUDIT_NUMBERS = 8  # numeric audit fields shown as per-speaker medians
AUDIT_KEYS = ("id", "speaker", "verdict", "reasons")


class ReportError(ValueError):
    """A file of the dataset the report cannot read; the message names it and the line."""


@dataclasses.dataclass(frozen=True)
class SpeakerRow:
    """One line of speakers.tsv."""

    speaker: str
    name: str
    label: int
    seconds: Mapping[str, float]
    segments: Mapping[str, int]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def parse_speakers_tsv(text: str) -> List[SpeakerRow]:
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    col = {name: i for i, name in enumerate(header)}
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        try:
            rows.append(SpeakerRow(
                speaker=cells[0], name=cells[col["name"]], label=int(cells[col["label"]]),
                seconds={s: float(cells[col[f"{s}_seconds"]]) for s in schema.SPLITS},
                segments={s: int(cells[col[f"{s}_segments"]]) for s in schema.SPLITS}))
        except (KeyError, IndexError, ValueError) as exc:
            raise ReportError(f"{schema.SPEAKERS_TSV} line {n}: unreadable ({type(exc).__name__}: {exc})") from None
    return rows


def speaker_provenance(planned: Iterable[Mapping]) -> Dict[str, Dict]:
    """Per speaker: recordings with segments, and the distinct sources and licenses of their recordings
    (from the builder's plan; written as report/provenance.json)."""
    out: Dict[str, Dict] = {}
    for p in planned:
        entry = out.setdefault(p["speaker"], {"recordings": set(), "sources": set(), "licenses": set()})
        entry["recordings"].add(p.get("recording") or p["id"])
        entry["sources"].add(p.get("source") or "")
        entry["licenses"].add(p.get("license") or "")
    return {k: {"recordings": len(v["recordings"]), "sources": sorted(v["sources"] - {""}),
                "licenses": sorted(v["licenses"] - {""})} for k, v in sorted(out.items())}


# ---------------------------------------------------------------------------------------------- file readers
def _read(path: str) -> Optional[bytes]:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def _write(path: str, data: bytes, mime: str) -> None:
    with FileSystems.create(path, mime_type=mime, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


@dataclasses.dataclass
class RejectGroup:
    count: int = 0
    examples: List[Rejection] = dataclasses.field(default_factory=list)


def read_rejects(out: str) -> Dict[Tuple[str, str], RejectGroup]:
    """(stage, reason) -> count and the first MAX_REJECT_EXAMPLES rejections (errors/*.jsonl are sorted)."""
    groups: Dict[Tuple[str, str], RejectGroup] = {}
    found = FileSystems.match([join(out, schema.ERRORS_DIR, "*.jsonl")])[0].metadata_list
    for path in sorted(m.path for m in found):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    r = Rejection.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ReportError(f"{path} line {n}: not a rejection ({type(exc).__name__}: {exc})") from None
                g = groups.setdefault((r.stage, r.reason), RejectGroup())
                g.count += 1
                if len(g.examples) < MAX_REJECT_EXAMPLES:
                    g.examples.append(r)
    return dict(sorted(groups.items()))


@dataclasses.dataclass
class Audit:
    """OUT/audit.jsonl summed up: verdicts per speaker, medians of its numeric fields, reasons."""

    verdicts: Tuple[str, ...]  # keep, flag, reject first, then any other verdict seen
    per_speaker: Dict[str, collections.Counter]
    numbers: Tuple[str, ...]  # numeric fields shown (dotted for one level of nesting)
    medians: Dict[str, Dict[str, float]]  # speaker -> field -> median
    reasons: Dict[Tuple[str, str], RejectGroup]  # (verdict, reason) -> count and examples
    lines: int = 0


def _numbers(line: Mapping) -> Dict[str, float]:
    out = {}
    for k, v in line.items():
        if k in AUDIT_KEYS:
            continue
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()
                        if isinstance(vv, (int, float)) and not isinstance(vv, bool)})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def parse_audit(lines: Iterable[str], name: str = "audit.jsonl") -> Audit:
    """ReportError on a line that is not a JSON object with a string speaker and verdict."""
    per_speaker: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    values: Dict[str, Dict[str, List[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    reasons: Dict[Tuple[str, str], RejectGroup] = {}
    fields: collections.Counter = collections.Counter()
    count = 0
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError as exc:
            raise ReportError(f"{name} line {n}: not JSON ({exc})") from None
        if not isinstance(line, dict) or not isinstance(line.get("speaker"), str) \
                or not isinstance(line.get("verdict"), str):
            raise ReportError(f"{name} line {n}: expected an object with string \"speaker\" and \"verdict\"")
        codes = line.get("reasons") or []
        if not isinstance(codes, list):
            raise ReportError(f"{name} line {n}: \"reasons\" is not a list")
        count += 1
        speaker, verdict = line["speaker"], line["verdict"]
        per_speaker[speaker][verdict] += 1
        for k, v in _numbers(line).items():
            values[speaker][k].append(v)
            fields[k] += 1
        for code in codes:
            g = reasons.setdefault((verdict, str(code)), RejectGroup())
            g.count += 1
            if len(g.examples) < MAX_REJECT_EXAMPLES:
                g.examples.append(Rejection(id=str(line.get("id", "")), path="", stage=verdict, reason=str(code),
                                            message=", ".join(f"{k} {v:g}" for k, v in sorted(_numbers(line).items()))))
    seen = {v for c in per_speaker.values() for v in c}
    verdicts = tuple(v for v in ("keep", "flag", "reject") if v in seen) + tuple(sorted(seen - {"keep", "flag", "reject"}))
    numbers = tuple(sorted(k for k, _ in sorted(fields.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_AUDIT_NUMBERS]))
    medians = {s: {k: statistics.median(v) for k, v in d.items() if k in numbers} for s, d in values.items()}
    return Audit(verdicts=verdicts, per_speaker=dict(per_speaker), numbers=numbers, medians=medians,
                 reasons=dict(sorted(reasons.items())), lines=count)


def read_audit(out: str) -> Optional[Audit]:
    data = _read(join(out, schema.AUDIT_JSONL))
    if data is None:
        return None
    return parse_audit(data.decode("utf-8", "replace").splitlines(), schema.AUDIT_JSONL)


def sample_audio(out: str, meta: DatasetMeta, speakers: Sequence[str], max_examples: int = MAX_SCAN_EXAMPLES
                 ) -> Tuple[Dict[str, Tuple[str, np.ndarray]], int]:
    """{speaker: (example id, int16 samples without the zero padding)} for the first example of each of
    `speakers` in shard order (train, validation, test), reading at most `max_examples` examples; and the
    number of examples read."""
    wanted = set(speakers)
    found: Dict[str, Tuple[str, np.ndarray]] = {}
    if not wanted or schema.AUDIO not in meta.features:
        return found, 0
    read = 0
    compression = CompressionTypes.GZIP if meta.gzip else CompressionTypes.UNCOMPRESSED
    for split in schema.SPLITS:
        for path in meta.files(out, split):
            with FileSystems.open(path, compression_type=compression) as f:
                for record in iter_tfrecords(f):
                    read += 1
                    feature = parse_example(record)  # no TensorFlow import in the builder's main process
                    speaker = feature[schema.SPEAKER].bytes_list.value[0].decode("utf-8")
                    if speaker in wanted and speaker not in found:
                        valid = int(feature[schema.NUM_VALID_SAMPLES].int64_list.value[0])
                        pcm = np.frombuffer(feature[schema.AUDIO].bytes_list.value[0], "<i2")[:valid]
                        found[speaker] = (feature[schema.ID].bytes_list.value[0].decode("utf-8"), pcm)
                    if len(found) == len(wanted) or read >= max_examples:
                        return found, read
    return found, read


def audio_name(index: int, speaker: str) -> str:
    """report/audio/<index>-<safe form of the key>.wav: the index keeps names unique, safe_name keeps them paths."""
    return f"{index:04d}-{schema.safe_name(speaker, 40)}.wav"


# ---------------------------------------------------------------------------------------------- the page
def _groups_table(groups: Mapping[Tuple[str, str], RejectGroup], first: str, table_id: str) -> str:
    rows = []
    for (stage, reason), g in groups.items():
        examples = "<br>".join(f"<code>{hp.esc(r.id or r.path)}</code> {hp.esc(r.message[:200])}" for r in g.examples)
        rows.append([stage, reason, g.count, (g.count, examples)])
    return hp.table([(first, False), ("reason", False), ("count", True), ("examples", False)], rows, table_id)


def render(out: str, max_audio_speakers: int = MAX_AUDIO_SPEAKERS, max_scan_examples: int = MAX_SCAN_EXAMPLES
           ) -> Dict[str, bytes]:
    """{path under report/: bytes}: index.html and the sample WAV files. ReportError/DatasetError on bad files."""
    meta = DatasetMeta.read(out)
    tsv = _read(join(out, schema.SPEAKERS_TSV))
    speakers = parse_speakers_tsv(tsv.decode("utf-8")) if tsv is not None else []
    prov_bytes = _read(join(out, schema.REPORT_DIR, PROVENANCE_JSON))
    try:
        provenance = json.loads(prov_bytes) if prov_bytes else {}
    except ValueError as exc:
        raise ReportError(f"{schema.REPORT_DIR}/{PROVENANCE_JSON} is not JSON ({exc})") from None
    if not isinstance(provenance, dict) or not all(isinstance(v, dict) for v in provenance.values()):
        raise ReportError(f"{schema.REPORT_DIR}/{PROVENANCE_JSON} is not an object of objects")
    rejects = read_rejects(out)
    audit = read_audit(out)

    keys = sorted(r.speaker for r in speakers)[:max_audio_speakers]
    samples, scanned = sample_audio(out, meta, keys, max_scan_examples)
    files: Dict[str, bytes] = {}
    player: Dict[str, str] = {}
    for i, key in enumerate(keys):
        if key in samples:
            name = audio_name(i, key)
            buf = io.BytesIO()
            write_wav(buf, samples[key][1])
            files[f"{AUDIO_DIR}/{name}"] = buf.getvalue()
            player[key] = (f"<audio controls preload=\"none\" src=\"{AUDIO_DIR}/{hp.esc(name)}\" "
                           f"title=\"{hp.esc(samples[key][0])}\"></audio>")

    c = meta.counts
    body = [hp.paragraph(f"Built by code {meta.code_version or '?'}; decoder {meta.decoder_build or '?'}; "
                         f"split by {meta.split_by}; features {', '.join(meta.features)}.")]
    head = {"hours of segments": f"{sum(meta.split(s).seconds for s in schema.SPLITS) / 3600:.2f}",
            "hours of speech kept": f"{meta.speech_seconds / 3600:.2f}",
            "speakers": meta.num_speakers, "recordings": c.recordings_with_segments}
    head.update({f"{s} examples": meta.examples(s) for s in schema.SPLITS})
    head["rejected inputs"] = f"{c.rejected} of {c.inputs}"
    head["split audit"] = "holds" if meta.split_audit.holds else "VIOLATED"
    body.append(hp.figures(head))
    if not c.add_up:
        body.append(hp.paragraph("The counts do not add up: inputs differ from recordings with segments + "
                                 "rejected.", "bad"))
    body.append(hp.paragraph(f"Split audit: {meta.split_audit.property}."))

    totals = [r.total_seconds for r in speakers]
    charts = [hp.histogram_svg(totals, "Seconds per speaker", "seconds of audio (all splits)", "speakers"),
              hp.cdf_svg(totals, "Seconds per speaker (CDF)", "seconds of audio (all splits)")]
    durations = _read(join(out, schema.REPORT_DIR, "durations.png"))
    if durations:
        charts.append(hp.png_img(durations, "recording durations"))
    body.append(hp.section("Distributions", f"<div class=\"charts\">{''.join(charts)}</div>"))

    columns = [("speaker", False), ("name", False), ("label", True), ("seconds", True), ("recordings", True)]
    columns += [(f"{s} examples", True) for s in schema.SPLITS]
    columns += [("source", False), ("license", False)]
    if audit:
        columns += [(v, True) for v in audit.verdicts] + [(f"median {k}", True) for k in audit.numbers]
    columns.append(("sample", False))
    rows = []
    for r in speakers:
        p = provenance.get(r.speaker, {})
        row = [r.speaker, r.name, r.label, hp.number(round(r.total_seconds, 3), 1), p.get("recordings")]
        row += [r.segments[s] for s in schema.SPLITS]
        row += [", ".join(p.get("sources", [])), ", ".join(p.get("licenses", []))]
        if audit:
            counts = audit.per_speaker.get(r.speaker, {})
            row += [counts.get(v, 0) for v in audit.verdicts]
            row += [hp.number(audit.medians.get(r.speaker, {}).get(k), 3) for k in audit.numbers]
        row.append((1 if r.speaker in player else 0, player.get(r.speaker, "")))
        rows.append(row)
    note = (f"{len(speakers)} speakers; click a heading to sort. Samples: the first example found of each of the "
            f"first {len(keys)} speakers by key ({len(samples)} found in {scanned} examples read"
            f"{'' if schema.AUDIO in meta.features else '; this dataset stores no audio feature'}).")
    body.append(hp.section("Speakers", hp.paragraph(note), hp.table(columns, rows, "speakers", tall=True)))

    reject_parts = [hp.paragraph(f"{c.rejected} inputs rejected; every one is a line of errors/<stage>.jsonl. "
                                 f"Up to {MAX_REJECT_EXAMPLES} examples per reason.")]
    if rejects:
        reject_parts.append(_groups_table(rejects, "stage", "rejects"))
    body.append(hp.section("Rejected inputs", *reject_parts))

    if audit:
        verdicts = collections.Counter()
        for cnt in audit.per_speaker.values():
            verdicts.update(cnt)
        summary = ", ".join(f"{v} {verdicts[v]}" for v in audit.verdicts)
        parts = [hp.paragraph(f"{schema.AUDIT_JSONL}: {audit.lines} lines ({summary}). Reasons with up to "
                              f"{MAX_REJECT_EXAMPLES} examples and their measured numbers:")]
        if audit.reasons:
            parts.append(_groups_table(audit.reasons, "verdict", "audit"))
        body.append(hp.section("Audit", *parts))
    else:
        body.append(hp.section("Audit", hp.paragraph(f"No {schema.AUDIT_JSONL} in this dataset.")))

    files[INDEX_HTML] = hp.document(f"Dataset report: {meta.name}", body).encode("utf-8")
    return files


def write_page(out: str, **kwargs) -> List[str]:
    """Render and write report/index.html and report/audio/ (replacing earlier samples); the paths written."""
    files = render(out, **kwargs)
    audio_dir = join(out, schema.REPORT_DIR, AUDIO_DIR)
    stale = [m.path for m in FileSystems.match([join(audio_dir, "*.wav")])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)
    written = []
    for name, data in sorted(files.items()):
        path = join(out, schema.REPORT_DIR, *name.split("/"))
        _write(path, data, "audio/wav" if name.endswith(".wav") else "text/html")
        written.append(path)
    return written


def write_provenance(out: str, planned: Iterable[Mapping]) -> None:
    text = json.dumps(speaker_provenance(planned), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    _write(join(out, schema.REPORT_DIR, PROVENANCE_JSON), text.encode("utf-8"), "application/json")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="(Re)draw OUT/report/index.html from a dataset folder's files.")
    p.add_argument("dataset", help="a folder written by python -m pipelines.build_dataset (local or gs://)")
    args = p.parse_args(argv)
    try:
        written = write_page(args.dataset)
    except (ReportError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{written[-1] if written else ''} ({len(written) - 1} sample files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
