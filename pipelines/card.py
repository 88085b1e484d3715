"""The dataset card: OUT/README.md in the Hugging Face dataset-card form (YAML front matter, then markdown)
and OUT/sources.tsv (one attribution row per recording), from dataset.json, the recordings that became
examples, their manifest lines and OUT/audit.jsonl when an acoustic audit wrote one.

pipelines.finalize writes both after each build. After an audit has written OUT/audit.jsonl, render the card
again from the folder (dataset.json, sources.tsv, audit.jsonl):
  python -m pipelines.card OUT
Strings from the web (titles, names, licence texts) are made safe for each target here: quoted YAML scalars,
escaped markdown, TSV without tabs or newlines. No Beam; TensorFlow only to read or write gs:// paths.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import html
import json
import re
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pipelines import schema
from pipelines.dataset_meta import DatasetError, DatasetMeta
from pipelines.paths import join, read_text, write_bytes

MAX_LISTED_SPEAKERS = 50  # audit section: speakers named one by one, then "and N more" (all in audit.jsonl)
MAX_CELL = 200  # characters of web text in one markdown table cell
AUDIT_VERDICTS = ("keep", "flag", "reject")

# ---------------------------------------------------------------------------------------------
# Licences: what the scrapers write -> Hugging Face Hub licence ids (https://hf.co/docs/hub/repositories-licenses)
# ---------------------------------------------------------------------------------------------
# Creative Commons and data licences the Hub knows by id (a subset of its list: the ones a recording can carry).
HF_LICENSES = frozenset((
    "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0",
    "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "pddl", "odc-by", "odbl", "mit", "apache-2.0", "unlicense"))


@dataclasses.dataclass(frozen=True)
class License:
    """A manifest licence as the Hub names it: `hf_id` is a Hub id, `other` (then `name` and `link` say which)
    or `unknown`."""

    hf_id: str
    name: str = ""
    link: str = ""


# The exact strings our scrapers write (scrapers/librivox/scrape.py LICENSE, scrapers/youtube/scrape.py
# STANDARD_LICENSE and the watch page's License row as yt-dlp reports it), lower-cased.
KNOWN_LICENSES: Mapping[str, License] = {
    # LibriVox dedicates its recordings to the public domain (in the USA; its own page says to check elsewhere).
    # CC0 or PDDL would name a legal tool the readers did not apply, so: `other`, named and linked.
    "public-domain": License("other", "public-domain", "https://librivox.org/pages/public-domain/"),
    "public domain": License("other", "public-domain", "https://librivox.org/pages/public-domain/"),
    # YouTube's one Creative Commons option is CC BY 3.0 (the licence its upload page links to).
    "creative commons attribution license (reuse allowed)": License("cc-by-3.0"),
    "creative commons attribution license": License("cc-by-3.0"),
    "standard youtube license": License("other", "youtube-standard-license",
                                        "https://www.youtube.com/static?template=terms"),
    "cc0": License("cc0-1.0"),
}
_CC = re.compile(r"^(?:cc|creative[ -]commons)[ _-]*(by(?:[ _-]*(?:nc|nd|sa))*|0|zero)[ _-]*v?(\d\.\d)?$")


@functools.lru_cache(maxsize=4096)  # a few distinct texts, asked once per recording
def hf_license(text: str) -> License:
    """The Hub's name for a manifest's licence text: a known string, a CC id written loosely (`CC BY 4.0`,
    `cc-by-sa-4.0`), a Hub id, else `other` named after the text; `unknown` when empty."""
    key = " ".join(text.lower().split())
    if not key:
        return License("unknown")
    if key in KNOWN_LICENSES:
        return KNOWN_LICENSES[key]
    if key in HF_LICENSES:
        return License(key)
    m = _CC.match(key)
    if m:
        kind, version = m.group(1), m.group(2) or ""
        if kind in ("0", "zero"):
            hf_id = "cc0-1.0"
        else:
            hf_id = "cc-" + "-".join(re.findall(r"by|nc|nd|sa", kind)) + (f"-{version}" if version else "")
        if hf_id in HF_LICENSES:
            return License(hf_id)
    return License("other", slug(key) or "other")


def slug(text: str, max_len: int = 64) -> str:
    """`my-license-1.0`-style id of a text (the Hub's `license_name` form)."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:max_len].strip("-.")


# ---------------------------------------------------------------------------------------------
# Languages: the manifest's `language` (LibriVox writes English names) -> ISO 639-1 (639-3 when there is none)
# ---------------------------------------------------------------------------------------------
LANGUAGE_CODES: Mapping[str, str] = {
    "afrikaans": "af", "ancient greek": "grc", "arabic": "ar", "basque": "eu", "bengali": "bn", "bulgarian": "bg",
    "catalan": "ca", "chinese": "zh", "church slavonic": "cu", "croatian": "hr", "czech": "cs", "danish": "da",
    "dutch": "nl", "english": "en", "esperanto": "eo", "estonian": "et", "finnish": "fi", "french": "fr",
    "frisian": "fy", "galician": "gl", "german": "de", "greek": "el", "hebrew": "he", "hindi": "hi",
    "hungarian": "hu", "icelandic": "is", "indonesian": "id", "interlingua": "ia", "irish": "ga", "italian": "it",
    "japanese": "ja", "korean": "ko", "latin": "la", "latvian": "lv", "lithuanian": "lt", "middle english": "enm",
    "multilingual": "multilingual", "norwegian": "no", "old english": "ang", "old norse": "non", "persian": "fa",
    "polish": "pl", "portuguese": "pt", "romanian": "ro", "russian": "ru", "sanskrit": "sa", "scots": "sco",
    "serbian": "sr", "slovak": "sk", "slovenian": "sl", "spanish": "es", "swedish": "sv", "tagalog": "tl",
    "tamil": "ta", "turkish": "tr", "ukrainian": "uk", "urdu": "ur", "vietnamese": "vi", "welsh": "cy",
    "yiddish": "yi",
}
_LANGUAGE_TAG = re.compile(r"^([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*$")


def language_code(text: str) -> Optional[str]:
    """`en` for `English`, `en`, `en-US` or `EN_us`; None for an empty or unknown language."""
    key = " ".join(text.lower().split())
    if key in LANGUAGE_CODES:
        return LANGUAGE_CODES[key]
    m = _LANGUAGE_TAG.match(key)
    return m.group(1) if m else None


def size_category(examples: int) -> str:
    """The Hub's `size_categories` value for a number of examples."""
    bounds = ((10 ** 3, "n<1K"), (10 ** 4, "1K<n<10K"), (10 ** 5, "10K<n<100K"), (10 ** 6, "100K<n<1M"),
              (10 ** 7, "1M<n<10M"), (10 ** 8, "10M<n<100M"), (10 ** 9, "100M<n<1B"), (10 ** 10, "1B<n<10B"),
              (10 ** 11, "10B<n<100B"), (10 ** 12, "100B<n<1T"))
    for bound, name in bounds:
        if examples < bound:
            return name
    return "n>1T"


# ---------------------------------------------------------------------------------------------
# Making web text safe for YAML, markdown and TSV
# ---------------------------------------------------------------------------------------------
# Control characters, YAML 1.1's extra line breaks (NEL is in C1), surrogates and non-characters.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~$])")


def plain(text: object) -> str:
    """One line of text: every control character, line break or surrogate becomes a space."""
    return " ".join(_UNSAFE.sub(" ", str(text)).split())


def yaml_str(text: object) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is YAML's): `---`, `: `, `#` or quotes stay text."""
    return json.dumps(plain(text), ensure_ascii=False)


def md(text: object, max_len: int = MAX_CELL) -> str:
    """Inline markdown text: HTML escaped, markdown punctuation backslash-escaped, one line, bounded."""
    line = plain(text)
    if len(line) > max_len:
        line = line[:max_len - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", html.escape(line, quote=False))


def tsv_field(text: object) -> str:
    return plain(text)


# ---------------------------------------------------------------------------------------------
# sources.tsv: one row per recording (the unit of attribution: a chapter, a video)
# ---------------------------------------------------------------------------------------------
SOURCES_COLUMNS = ("speaker", "speaker_name", "source", "group", "channel", "recording", "ids", "split",
                   "examples", "seconds", "language", "title", "urls", "license", "hf_license", "attribution")


@dataclasses.dataclass(frozen=True)
class SourceRow:
    """One recording in the dataset with what crediting it needs (CC BY: title, author, source link, licence)."""

    speaker: str
    speaker_name: str
    source: str
    group: str
    channel: str
    recording: str
    ids: int
    splits: Tuple[str, ...]
    examples: int
    seconds: float
    title: str
    urls: Tuple[str, ...]
    license: str
    language: str = ""

    @property
    def hf_license(self) -> License:
        return hf_license(self.license)

    @property
    def attribution(self) -> str:
        """`<title> by <speaker_name> (channel <channel>), <urls>, <licence>` (TASL: title, author, source, licence)."""
        who = self.speaker_name or self.speaker
        if self.channel and self.channel != who:
            who += f" (channel {self.channel})"
        parts = [f"{self.title or self.recording} by {who}", " ".join(self.urls) or "no URL recorded",
                 self.license or "licence not recorded"]
        return plain(", ".join(parts))

    @classmethod
    def from_tsv(cls, line: str) -> "SourceRow":
        """A row of sources.tsv read back (the card can be rendered again from the folder: `refresh`)."""
        fields = line.rstrip("\n").split("\t")
        if len(fields) != len(SOURCES_COLUMNS):
            raise ValueError(f"{schema.SOURCES_TSV}: a row of {len(fields)} fields, not {len(SOURCES_COLUMNS)}")
        v = dict(zip(SOURCES_COLUMNS, fields))
        return cls(speaker=v["speaker"], speaker_name=v["speaker_name"], source=v["source"], group=v["group"],
                   channel=v["channel"], recording=v["recording"], ids=int(v["ids"]),
                   splits=tuple(s for s in v["split"].split(",") if s), examples=int(v["examples"]),
                   seconds=float(v["seconds"]), title=v["title"], urls=tuple(v["urls"].split()),
                   license=v["license"], language=v["language"])

    def to_tsv(self) -> str:
        lic = self.hf_license
        values = (self.speaker, self.speaker_name, self.source, self.group, self.channel, self.recording,
                  str(self.ids), ",".join(self.splits), str(self.examples), f"{self.seconds:.3f}", self.language,
                  self.title, " ".join(self.urls), self.license, lic.name if lic.hf_id == "other" else lic.hf_id,
                  self.attribution)
        return "\t".join(tsv_field(v) for v in values) + "\n"


Written = Mapping[str, Mapping[str, Tuple[int, float]]]  # manifest id -> {split: (examples, seconds of speech)}


def source_rows(planned: Sequence[Mapping], written: Written, extras: Mapping[str, Mapping]) -> List[SourceRow]:
    """Group the planned recordings (finalize's planned.json: one entry per manifest id with examples) by
    recording key, sorted by (speaker, source, group, recording). `written` says what the shards hold of each
    id (pipelines.finalize.written_by_id); `extras` maps a manifest id to its manifest line's extra fields
    (the YouTube scraper keeps the channel's name there)."""
    by_rec: Dict[Tuple[str, str], List[Mapping]] = collections.defaultdict(list)
    for p in planned:
        by_rec[(str(p["speaker"]), str(p.get("recording") or p["id"]))].append(p)
    rows = []
    for (speaker, recording), parts in by_rec.items():
        parts = sorted(parts, key=lambda p: str(p["id"]))
        first = parts[0]
        channel = next((str(extras.get(p["id"], {}).get("channel")) for p in parts
                        if isinstance(extras.get(p["id"], {}).get("channel"), str)), "")
        titles = list(dict.fromkeys(str(p["title"]) for p in parts if p.get("title")))
        rows.append(SourceRow(  # text as sources.tsv holds it (plain), so the TSV reads back to equal rows
            speaker=plain(speaker), speaker_name=plain(first.get("speaker_name") or ""),
            source=plain(first.get("source") or ""), group=plain(first.get("group") or ""), channel=plain(channel),
            recording=plain(recording), ids=len(parts),
            splits=tuple(s for s in schema.SPLITS if any(written.get(p["id"], {}).get(s) for p in parts)),
            examples=sum(n for p in parts for n, _ in written.get(p["id"], {}).values()),
            seconds=round(sum(sec for p in parts for _, sec in written.get(p["id"], {}).values()), 3),
            title=plain(" / ".join(titles)),
            urls=tuple(sorted({u for p in parts for u in plain(p.get("url") or "").split()})),
            license=plain(" / ".join(dict.fromkeys(str(p["license"]) for p in parts if p.get("license")))),
            language=plain(first.get("language") or "")))
    return sorted(rows, key=lambda r: (r.speaker, r.source, r.group, r.recording))


def sources_tsv(rows: Iterable[SourceRow]) -> str:
    return "\t".join(SOURCES_COLUMNS) + "\n" + "".join(r.to_tsv() for r in rows)


# ---------------------------------------------------------------------------------------------
# The acoustic audit's verdicts (OUT/audit.jsonl, when present)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AuditSummary:
    """Verdict counts, per-reason counts of flagged and rejected recordings, and the speakers concerned."""

    recordings: int
    verdicts: Mapping[str, int]
    reasons: Mapping[str, Mapping[str, int]]  # reason -> {"flag": n, "reject": n}
    speakers: Mapping[str, Mapping[str, int]]  # speaker -> {"flag": n, "reject": n}, only those with any
    unreadable: int = 0


def summarize_audit(lines: Iterable[str]) -> AuditSummary:
    """Read audit.jsonl lines ({"id", "speaker", "verdict": keep|flag|reject, "reasons": [codes], ...});
    a line that is not such an object is counted as unreadable, never a crash."""
    verdicts: Dict[str, int] = collections.Counter()
    reasons: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    speakers: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    unreadable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        verdict = item.get("verdict") if isinstance(item, dict) else None
        codes = item.get("reasons") if isinstance(item, dict) else None
        if verdict not in AUDIT_VERDICTS or not isinstance(codes if codes is not None else [], list):
            unreadable += 1
            continue
        verdicts[verdict] += 1
        if verdict != "keep":
            for code in dict.fromkeys(str(c) for c in codes or []):
                reasons[code][verdict] += 1
            speakers[str(item.get("speaker") or "")][verdict] += 1
    return AuditSummary(
        recordings=sum(verdicts.values()), verdicts={v: verdicts.get(v, 0) for v in AUDIT_VERDICTS},
        reasons={k: dict(v) for k, v in sorted(reasons.items())},
        speakers={k: dict(v) for k, v in sorted(speakers.items())}, unreadable=unreadable)


# ---------------------------------------------------------------------------------------------
# README.md
# ---------------------------------------------------------------------------------------------
def front_matter(meta: DatasetMeta, rows: Sequence[SourceRow]) -> str:
    """The YAML header the Hub reads: licence(s), language(s), task, size, name, tags."""
    licenses = sorted({r.hf_license for r in rows}, key=lambda x: (x.hf_id, x.name))
    ids = list(dict.fromkeys(x.hf_id for x in licenses)) or ["unknown"]
    others = [x for x in licenses if x.hf_id == "other"]
    languages = sorted({c for c in (language_code(r.language) for r in rows) if c})
    sources = sorted({slug(r.source) for r in rows if slug(r.source)})
    examples = sum(meta.split(s).examples for s in schema.SPLITS)
    out = ["---"]
    out.append(f"license: {yaml_str(ids[0])}" if len(ids) == 1 else "license:\n" + _yaml_list(ids))
    if len(others) == 1:
        out.append(f"license_name: {yaml_str(others[0].name)}")
        if others[0].link:
            out.append(f"license_link: {yaml_str(others[0].link)}")
    elif others:  # several licences outside the Hub's list: each recording's is in sources.tsv
        out += [f"license_name: {yaml_str('mixed-see-sources-tsv')}", f"license_link: {yaml_str(schema.SOURCES_TSV)}"]
    if languages:
        out.append("language:\n" + _yaml_list(languages))
    out += ["task_categories:\n" + _yaml_list(["audio-classification"]),
            "task_ids:\n" + _yaml_list(["speaker-identification"]),
            "size_categories:\n" + _yaml_list([size_category(examples)]),
            f"pretty_name: {yaml_str(meta.name or 'speaker dataset')}",
            "tags:\n" + _yaml_list(["audio", "speaker-recognition", "tfrecord", *sources]), "---"]
    return "\n".join(out) + "\n"


def _yaml_list(items: Iterable[str]) -> str:
    return "\n".join(f"- {yaml_str(i)}" for i in items)




def render_card(meta: DatasetMeta, rows: Sequence[SourceRow], audit: Optional[AuditSummary]) -> str:
    """OUT/README.md: the front matter, then summary, sources, how it was built, splits, rejects, the audit,
    known limitations and where attribution lives."""
    c, a, cfg = meta.counts, meta.split_audit, meta.config
    examples = sum(meta.split(s).examples for s in schema.SPLITS)
    speech_s = sum(meta.split(s).speech_seconds for s in schema.SPLITS)
    segment_s = cfg.segment_samples / schema.SAMPLE_RATE
    out = [front_matter(meta, rows), f"# {md(meta.name or 'Speaker dataset')}", "",
           f"A speaker-recognition dataset: {examples} examples of {segment_s:g} s of 16 kHz mono speech from "
           f"{meta.num_speakers} speakers ({meta.num_train_speakers} in train) and "
           f"{len(rows)} recordings, {speech_s / 3600:.2f} h of speech. Each example is one segment "
           "of one recording; its label is the `speaker` key. Built by `python -m pipelines.build_dataset` "
           f"(speaker-datasets {md(meta.code_version)}) into sharded TFRecords; `dataset.json` describes the "
           "features and `speakers.tsv` lists the speakers.", ""]

    out += ["## Sources", "", "| source | speakers | recordings | examples | hours | licences |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    by_source: Dict[str, List[SourceRow]] = collections.defaultdict(list)
    for r in rows:
        by_source[r.source].append(r)
    for source, items in sorted(by_source.items()):
        licences = collections.Counter(r.license or "not recorded" for r in items)
        cell = ", ".join(f"{md(k, 80)} ({v})" for k, v in sorted(licences.items()))
        out.append(f"| {md(source or 'unknown')} | {len({r.speaker for r in items})} | {len(items)} | "
                   f"{sum(r.examples for r in items)} | {sum(r.seconds for r in items) / 3600:.2f} | {cell} |")
    langs = collections.Counter(r.language for r in rows)
    unmapped = sorted(k for k in langs if k and not language_code(k))
    lang_text = ", ".join(f"{md(k or 'not recorded', 40)} ({v})" for k, v in sorted(langs.items()))
    out += ["", f"Recordings per language (as the source states it): {lang_text or 'none'}."
            + (f" Not mapped to an ISO 639 code: {', '.join(md(k, 40) for k in unmapped)}." if unmapped else ""),
            "", "Licences on the Hub's terms: " + ", ".join(
                f"{md(x.hf_id if x.hf_id != 'other' else 'other: ' + x.name, 80)} ({n} recording{'s' * (n != 1)})"
                for x, n in sorted(collections.Counter(r.hf_license for r in rows).items(),
                                   key=lambda kv: (kv[0].hf_id, kv[0].name))) + ".", ""]

    s = cfg.silence
    fr = cfg.split_fractions
    source = ("a folder of audio (`--audio-dir`), laid out speaker/files" if cfg.audio_dir
              else "a manifest (`--manifest`)")
    out += ["## How it was built", "",
            f"- Input: {source}; the manifest the build read is `{schema.MANIFEST_JSONL}` here.",
            f"- Decoding: {md(meta.decoder_build or cfg.decoder)} (`--decoder {md(cfg.decoder)}`), to "
            f"{schema.SAMPLE_RATE} Hz mono int16.",
            ("- Silence: pauses of at least {:g} s more than {:g} dB below the recording's speech level removed, "
             "keeping {:g} s of pause beside the speech.".format(s.min_pause_s, s.threshold_db, s.padding_s)
             if s.enabled else "- Silence: not stripped."),
            f"- Segments: {segment_s:g} s, hop {cfg.hop_samples / schema.SAMPLE_RATE:g} s, "
            f"last piece: {md(cfg.partial)}.",
            f"- Per speaker: at least {cfg.min_seconds_per_speaker:g} s, at most "
            f"{'no limit' if cfg.max_seconds_per_speaker is None else f'{cfg.max_seconds_per_speaker:g} s'}.",
            f"- Split by {md(cfg.split_by)}: train/validation/test {fr[0]:g}/{fr[1]:g}/{fr[2]:g}, seed "
            f"{md(cfg.split_seed)}. Audited on the written shards: {md(a.property)}: "
            f"{'holds' if a.holds else '**VIOLATED**'}.",
            f"- Features: {', '.join(meta.features)} ({cfg.num_mel_bins} mel bins); shards "
            f"{'gzip-compressed' if cfg.gzip else 'uncompressed'}.", ""]

    out += ["## Splits", "", "| split | examples | speakers | recordings | hours of speech | shards |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for split in schema.SPLITS:
        info = meta.split(split)
        out.append(f"| {split} | {info.examples} | {info.speakers} | {info.recordings} | "
                   f"{info.speech_seconds / 3600:.2f} | {info.shards} |")

    out += ["", "## Rejected inputs", "",
            f"{c.inputs} inputs = {c.recordings_with_segments} recordings with examples + {c.rejected} rejected"
            f"{'' if c.add_up else ' (**the counts do not add up**)'}; every rejection is a line of "
            f"`{schema.ERRORS_DIR}/<stage>.jsonl`.", ""]
    if c.rejected_by_reason:
        out += ["| reason | inputs |", "| --- | ---: |"]
        out += [f"| {md(k)} | {v} |" for k, v in c.rejected_by_reason.items()]
        out.append("")

    out += ["## Acoustic audit", ""]
    if audit is None:
        out += [f"The acoustic audit was not run for this build (no `{schema.AUDIT_JSONL}`): no recording was "
                "checked for noise, clipping, narrow bandwidth or a low share of speech.", ""]
    else:
        v = audit.verdicts
        out.append(f"{audit.recordings} recordings audited (`{schema.AUDIT_JSONL}`): keep {v['keep']}, flag "
                   f"{v['flag']}, reject {v['reject']}."
                   + (f" {audit.unreadable} unreadable lines skipped." if audit.unreadable else ""))
        if audit.reasons:
            out += ["", "| reason | flagged | rejected |", "| --- | ---: | ---: |"]
            out += [f"| {md(k)} | {n.get('flag', 0)} | {n.get('reject', 0)} |" for k, n in audit.reasons.items()]
        names = {r.speaker: r.speaker_name for r in rows}
        listed = list(audit.speakers.items())
        out += ["", f"Speakers with a flagged or rejected recording: {len(listed)}."]
        for speaker, n in listed[:MAX_LISTED_SPEAKERS]:
            name = names.get(speaker, "")
            who = f"{md(name, 80)} ({md(speaker, 80)})" if name else md(speaker or "(no speaker)", 80)
            out.append(f"- {who}: flagged {n.get('flag', 0)}, rejected {n.get('reject', 0)}")
        if len(listed) > MAX_LISTED_SPEAKERS:
            out.append(f"- … and {len(listed) - MAX_LISTED_SPEAKERS} more (all in `{schema.AUDIT_JSONL}`)")
        out.append("")

    youtube = any(r.source == "youtube" for r in rows)
    librivox = any(r.source == "librivox" for r in rows)
    out += ["## Known limitations", "",
            "- Speaker labels come from the sources' metadata (a LibriVox reader, a YouTube channel or the name "
            "given to the scraper, a folder name)" + (" and were not checked by listening or by an acoustic audit"
                                                     if audit is None else "; the acoustic audit checks audio "
                                                     "quality, not who speaks") +
            ": a recording may hold other voices (introductions, co-readers, guests).",
            "- Licences are as the sources declare them" + (
                "; a YouTube licence is the uploader's statement, not verified to be theirs to give" if youtube
                else "") + "." + (" LibriVox recordings are in the public domain in the USA; check the law where "
                                  "you are." if librivox else ""),
            "- Segments of one recording share the session, microphone and room, so they are correlated; "
            + ("the splits keep each recording in one split." if cfg.split_by == "recording" else
               "the splits keep each speaker in one split." if cfg.split_by == "speaker" else
               "this dataset was split by segment, so one recording's segments are in several splits (leakage)."),
            "- Silence is found by level relative to the recording's speech, not by a voice-activity model: "
            "music, laughter or loud noise stay in.",
            "- Speakers are not balanced (seconds per speaker in `speakers.tsv`); the language is the source's "
            "statement, not detected; no gender, age or accent is recorded.",
            "- Voices identify people: use this dataset to build and evaluate speaker recognition, not to track "
            "anyone.", ""]

    out += ["## Provenance and attribution", "",
            f"- `{schema.SOURCES_TSV}`: one row per recording with speaker, source, book or channel, URLs, licence "
            "and an attribution line (title, author, source link, licence). CC BY requires that attribution "
            "wherever the audio or segments of it are shared.",
            f"- `{schema.MANIFEST_JSONL}`: the manifest the build read. An example's `id` is "
            "`<recording id>-<start ms>`; the manifest line of its id holds the recording's URL and licence"
            + (" (paths in it are relative to the original manifest's folder)." if cfg.manifest else "."),
            f"- `{schema.SPEAKERS_TSV}`, `{schema.DATASET_JSON}`, `{schema.ERRORS_DIR}/`, `{schema.REPORT_DIR}/`: "
            "speakers and labels, the full configuration and counts, every rejected input, plots.", ""]
    return "\n".join(out)


def render(meta: DatasetMeta, planned: Sequence[Mapping], written: Written, extras: Mapping[str, Mapping],
           audit_lines: Optional[Iterable[str]]) -> Dict[str, bytes]:
    """{file name in OUT: bytes}: README.md and sources.tsv (`audit_lines` None: no audit.jsonl)."""
    rows = source_rows(planned, written, extras)
    audit = None if audit_lines is None else summarize_audit(audit_lines)
    return {schema.CARD_MD: render_card(meta, rows, audit).encode("utf-8"),
            schema.SOURCES_TSV: sources_tsv(rows).encode("utf-8")}


def refresh(out: str) -> Optional[AuditSummary]:
    """Render OUT/README.md again from the folder (after an audit wrote OUT/audit.jsonl); returns the audit's
    summary, None when there is none. DatasetError when the folder lacks dataset.json or sources.tsv."""
    meta = DatasetMeta.read(out)
    try:
        lines = read_text(join(out, schema.SOURCES_TSV)).splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{out} holds no {schema.SOURCES_TSV}; build it again with python -m "
                           "pipelines.build_dataset") from None
    try:
        if not lines or tuple(lines[0].split("\t")) != SOURCES_COLUMNS:
            raise ValueError(f"{schema.SOURCES_TSV} does not start with the header {' '.join(SOURCES_COLUMNS)}")
        rows = [SourceRow.from_tsv(line) for line in lines[1:]]
    except ValueError as exc:
        raise DatasetError(f"{out}: {exc}") from None
    try:
        audit = summarize_audit(read_text(join(out, schema.AUDIT_JSONL)).splitlines())
    except FileNotFoundError:
        audit = None
    write_bytes(join(out, schema.CARD_MD), render_card(meta, rows, audit).encode("utf-8"))
    return audit


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.card", description=(
        "Write a built dataset's card (OUT/README.md) again from its dataset.json, sources.tsv and, when an "
        "acoustic audit wrote one, audit.jsonl."))
    parser.add_argument("output", metavar="OUT", help="a folder written by python -m pipelines.build_dataset")
    args = parser.parse_args(argv)
    try:
        audit = refresh(args.output)
    except DatasetError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {join(args.output, schema.CARD_MD)} ("
          + (f"audit: {audit.recordings} recordings" if audit else f"no {schema.AUDIT_JSONL}: audit not run") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
