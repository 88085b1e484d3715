"""pipelines.card: the dataset card (README.md with a Hub-valid YAML header), sources.tsv and the manifest copy.

Pure rendering is tested on hand-made inputs (hostile strings included); one end-to-end build checks that
finalize writes the card, sources.tsv and manifest.jsonl, byte for byte the same on a second build.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
import yaml  # PyYAML, installed in the venv (Beam's dependency); used by the tests only

from pipelines import card, schema
from pipelines.card import SOURCES_COLUMNS, SourceRow, hf_license, language_code, size_category
from pipelines.config import BuildConfig
from pipelines.dataset_meta import Counts, DatasetMeta, SplitAudit, SplitInfo
from scrapers.librivox.scrape import LANGUAGES
from scrapers.librivox.scrape import LICENSE as LIBRIVOX_LICENSE
from scrapers.youtube.scrape import STANDARD_LICENSE
from tests.conftest import build, make_corpus

YOUTUBE_CC = "Creative Commons Attribution license (reuse allowed)"  # the watch page's License row
HOSTILE = "Evil\n---\nlicense: mit\n## Injected <script>alert(1)</script> | a | b | `x` *y* [z](http://e) $m$"
HEADINGS = ["## Sources", "## How it was built", "## Splits", "## Rejected inputs", "## Acoustic audit",
            "## Known limitations", "## Provenance and attribution"]


def split_card(text: str):
    """(YAML header as a dict, markdown body): the header is the text between the first two `---` lines."""
    lines = text.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end])), "\n".join(lines[end + 1:])


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def check_markdown(body: str):
    """The body's structure survived: exactly our headings, no raw HTML, tables with even rows."""
    assert [ln for ln in body.split("\n") if ln.startswith("#")][1:] == HEADINGS
    assert "<script" not in body and "\n---\n" not in body
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("| ---") or line.startswith("| --- "):
            header = unescaped_pipes(lines[i - 1])
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert unescaped_pipes(lines[j]) == header, lines[j]
                j += 1


def meta_of(name="ds", examples=(30, 4, 4), **config) -> DatasetMeta:
    cfg = BuildConfig(manifest="m.jsonl", **config)
    splits = {s: SplitInfo(examples=n, shards=1, speakers=2, recordings=2, speech_seconds=n * 1.0)
              for s, n in zip(schema.SPLITS, examples)}
    return DatasetMeta(name=name, config=cfg, feature_config=cfg.feature_config, splits=splits,
                       counts=Counts(inputs=7, recordings_with_segments=5, rejected=2,
                                     rejected_by_reason={"silent": 1, "too_short": 1}),
                       split_audit=SplitAudit(property="p", holds=True), num_speakers=3, num_train_speakers=3,
                       code_version="0.1.0", decoder_build="PyAV 1 (FFmpeg 2)")


def planned_entry(id_, speaker, name, source, license_, **more):
    return {"id": id_, "speaker": speaker, "speaker_name": name, "recording": more.pop("recording", id_),
            "group": more.pop("group", f"{source}-g"), "source": source, "license": license_,
            "language": more.pop("language", "English"), **more}


PLANNED = [
    planned_entry("librivox-52-001", "librivox:9", "Ann Reader", "librivox", LIBRIVOX_LICENSE, group="librivox-book-52",
                  title="A Book - Chapter 1", url="https://librivox.org/a-book/"),
    planned_entry("librivox-52-002", "librivox:9", "Ann Reader", "librivox", LIBRIVOX_LICENSE, group="librivox-book-52",
                  title="A Book - Chapter 2", url="https://librivox.org/a-book/"),
    planned_entry("youtube-abc", "youtube:UC1", "Bob Talks", "youtube", YOUTUBE_CC, recording="abc",
                  group="youtube-channel-UC1", title="My talk", url="https://www.youtube.com/watch?v=abc",
                  language=""),
    planned_entry("youtube-def", "youtube:UC1", "Bob Talks", "youtube", STANDARD_LICENSE, recording="def",
                  group="youtube-channel-UC1", title="Other talk", url="https://www.youtube.com/watch?v=def",
                  language=""),
]
WRITTEN = {"librivox-52-001": {"train": (10, 10.0)}, "librivox-52-002": {"test": (4, 3.5)},
           "youtube-abc": {"train": (12, 12.0)}, "youtube-def": {"validation": (4, 4.0), "train": (8, 8.0)}}
EXTRAS = {"youtube-abc": {"channel": "Bob's Channel", "video_id": "abc"}, "youtube-def": {"channel": "Bob's Channel"}}


# -- mappings --------------------------------------------------------------------------------------------
def test_the_scrapers_licences_map_to_hub_ids():
    assert hf_license(LIBRIVOX_LICENSE) == card.License("other", "public-domain",
                                                         "https://librivox.org/pages/public-domain/")
    assert hf_license(YOUTUBE_CC).hf_id == "cc-by-3.0"
    yt = hf_license(STANDARD_LICENSE)
    assert (yt.hf_id, yt.name) == ("other", "youtube-standard-license") and yt.link.startswith("https://www.youtube")
    assert [hf_license(t).hf_id for t in ("CC0", "cc0-1.0", "CC BY 4.0", "cc-by-sa-4.0", "CC-BY-NC-ND 4.0", "",
                                          "  ")] == ["cc0-1.0", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
                                                     "cc-by-nc-nd-4.0", "unknown", "unknown"]
    odd = hf_license("My Own Licence v2!")
    assert (odd.hf_id, odd.name) == ("other", "my-own-licence-v2")


def test_languages_become_iso_codes():
    assert all(language_code(name) for name in LANGUAGES)  # every language the LibriVox scraper accepts
    assert [language_code(t) for t in ("English", "german", "en", "en-US", "EN_us", "Old English", "", "Klingon")] \
        == ["en", "de", "en", "en", "en", "ang", None, None]


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10 ** 4, 123456, 10 ** 7)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "10M<n<100M"]


# -- sources.tsv --------------------------------------------------------------------------------------------
def test_sources_rows_one_per_recording_with_attribution():
    rows = card.source_rows(PLANNED, WRITTEN, EXTRAS)
    assert [(r.speaker, r.recording) for r in rows] == [
        ("librivox:9", "librivox-52-001"), ("librivox:9", "librivox-52-002"), ("youtube:UC1", "abc"),
        ("youtube:UC1", "def")]
    abc = rows[2]
    assert (abc.examples, abc.seconds, abc.splits, abc.channel) == (12, 12.0, ("train",), "Bob's Channel")
    assert abc.attribution == ("My talk by Bob Talks (channel Bob's Channel), https://www.youtube.com/watch?v=abc, "
                               "Creative Commons Attribution license (reuse allowed)")
    assert rows[3].splits == ("train", "validation") and rows[3].examples == 12
    text = card.sources_tsv(rows)
    lines = text.split("\n")
    assert lines[0].split("\t") == list(SOURCES_COLUMNS) and lines[-1] == "" and len(lines) == 6
    first = dict(zip(SOURCES_COLUMNS, lines[1].split("\t")))
    assert first["hf_license"] == "public-domain" and first["urls"] == "https://librivox.org/a-book/"
    assert first["attribution"] == "A Book - Chapter 1 by Ann Reader, https://librivox.org/a-book/, public-domain"
    assert [SourceRow.from_tsv(ln) for ln in lines[1:-1]] == rows  # reads back to the same rows


def test_several_ids_of_one_recording_share_a_row():
    parts = [planned_entry(f"yt-x-{i}", "youtube:UC1", "Bob", "youtube", YOUTUBE_CC, recording="x",
                           url=f"https://www.youtube.com/watch?v=x#{i}", title="Long talk") for i in (1, 2)]
    (row,) = card.source_rows(parts, {"yt-x-1": {"train": (3, 3.0)}, "yt-x-2": {"train": (2, 1.5)}}, {})
    assert (row.ids, row.examples, row.seconds, row.title) == (2, 5, 4.5, "Long talk")
    assert row.urls == ("https://www.youtube.com/watch?v=x#1", "https://www.youtube.com/watch?v=x#2")


# -- README.md ---------------------------------------------------------------------------------------------
def test_card_header_and_sections():
    files = card.render(meta_of(), PLANNED, WRITTEN, EXTRAS, None)
    header, body = split_card(files[schema.CARD_MD].decode())
    assert header == {
        "license": ["cc-by-3.0", "other"], "license_name": "mixed-see-sources-tsv", "license_link": "sources.tsv",
        "language": ["en"], "task_categories": ["audio-classification"], "task_ids": ["speaker-identification"],
        "size_categories": ["n<1K"], "pretty_name": "ds",
        "tags": ["audio", "speaker-recognition", "tfrecord", "librivox", "youtube"]}
    check_markdown(body)
    assert "| librivox | 1 | 2 | 14 | 0.00 | public-domain (2) |" in body
    assert ("| youtube | 1 | 2 | 24 | 0.01 | Creative Commons Attribution license (reuse allowed) (1), "
            "Standard YouTube License (1) |") in body
    assert "| train | 30 | 2 | 2 | 0.01 | 1 |" in body and "| silent | 1 |" in body
    assert "7 inputs = 5 recordings with examples + 2 rejected" in body
    assert "The acoustic audit was not run" in body
    assert "a YouTube licence is the uploader's statement" in body and "public domain in the USA" in body
    assert "Licences on the Hub's terms: cc-by-3.0 (1 recording), other: public-domain (2 recordings), " in body
    assert files[schema.SOURCES_TSV].decode().startswith("speaker\tspeaker_name")


def test_one_licence_outside_the_hub_list_is_named_and_linked():
    header, _ = split_card(card.render(meta_of(), PLANNED[:2], WRITTEN, {}, None)[schema.CARD_MD].decode())
    assert header["license"] == "other" and header["license_name"] == "public-domain"
    assert header["license_link"] == "https://librivox.org/pages/public-domain/"
    header, _ = split_card(card.render(meta_of(examples=(5000, 0, 0)), PLANNED[2:3], WRITTEN, {}, None)
                           [schema.CARD_MD].decode())
    assert header["license"] == "cc-by-3.0" and "license_name" not in header and "language" not in header
    assert header["size_categories"] == ["1K<n<10K"]


def test_hostile_names_titles_and_licences_break_neither_yaml_nor_markdown():
    evil = [planned_entry("e1", "evil:" + HOSTILE.replace("\n", " "), HOSTILE, HOSTILE, HOSTILE, title=HOSTILE,
                          url="https://e/\n---", group=HOSTILE, language=HOSTILE)]
    audit = [json.dumps({"id": "e1", "speaker": "evil:" + HOSTILE.replace("\n", " "), "verdict": "flag",
                         "reasons": [HOSTILE]})]
    files = card.render(meta_of(name=HOSTILE + "\u2028\x85\ud800"), evil, {"e1": {"train": (3, 3.0)}},
                        {"e1": {"channel": HOSTILE}}, audit)
    text = files[schema.CARD_MD].decode()
    header, body = split_card(text)
    assert set(header) == {"license", "license_name", "task_categories", "task_ids", "size_categories",
                           "pretty_name", "tags"}  # no injected key; the language is unknown, so none
    assert header["license"] == "other" and re.fullmatch(r"[a-z0-9.-]+", header["license_name"])
    assert header["pretty_name"].startswith("Evil --- license: mit ## Injected <script>")
    assert all(re.fullmatch(r"[a-z0-9.-]+", t) for t in header["tags"])
    check_markdown(body)
    assert "public domain in the USA" not in body and "YouTube licence" not in body  # neither source is here
    assert "&lt;script&gt;" in body and "\\| a \\| b" in body
    assert "Speakers with a flagged or rejected recording: 1." in body
    rows = files[schema.SOURCES_TSV].decode().split("\n")
    assert len(rows) == 3 and all(len(r.split("\t")) == len(SOURCES_COLUMNS) for r in rows[:2])
    assert SourceRow.from_tsv(rows[1]).title == card.plain(HOSTILE)


def test_audit_section_counts_verdicts_reasons_and_speakers():
    lines = [json.dumps(x) for x in (
        {"id": "librivox-52-001", "speaker": "librivox:9", "verdict": "keep", "reasons": [], "snr_db": 30},
        {"id": "librivox-52-002", "speaker": "librivox:9", "verdict": "flag", "reasons": ["low_snr", "clipped"]},
        {"id": "youtube-abc", "speaker": "youtube:UC1", "verdict": "reject", "reasons": ["low_snr"]},
        {"id": "youtube-def", "speaker": "youtube:UC1", "verdict": "flag", "reasons": ["narrowband"]},
    )] + ["not json", json.dumps({"id": "x", "verdict": "maybe"}), ""]
    summary = card.summarize_audit(lines)
    assert summary.recordings == 4 and summary.unreadable == 2
    assert summary.verdicts == {"keep": 1, "flag": 2, "reject": 1}
    assert summary.reasons == {"clipped": {"flag": 1}, "low_snr": {"flag": 1, "reject": 1}, "narrowband": {"flag": 1}}
    assert summary.speakers == {"librivox:9": {"flag": 1}, "youtube:UC1": {"flag": 1, "reject": 1}}
    _, body = split_card(card.render(meta_of(), PLANNED, WRITTEN, EXTRAS, lines)[schema.CARD_MD].decode())
    check_markdown(body)
    assert "4 recordings audited (`audit.jsonl`): keep 1, flag 2, reject 1. 2 unreadable lines skipped." in body
    assert "| low\\_snr | 1 | 1 |" in body and "| narrowband | 1 | 0 |" in body
    assert "Speakers with a flagged or rejected recording: 2." in body
    assert "- Bob Talks (youtube:UC1): flagged 1, rejected 1" in body
    assert "The acoustic audit was not run" not in body


def test_the_split_mode_changes_the_correlation_limitation():
    _, body = split_card(card.render(meta_of(split_by="segment"), PLANNED, WRITTEN, {}, None)[schema.CARD_MD].decode())
    assert "split by segment, so one recording's segments are in several splits" in body


# -- the build ----------------------------------------------------------------------------------------------
PROVENANCE = [
    {"url": "https://librivox.org/book-0/", "license": LIBRIVOX_LICENSE, "language": "English",
     "title": "Book 0 - Chapter {r}"},
    {"url": "https://www.youtube.com/watch?v=v1{r}", "license": YOUTUBE_CC, "title": "Talk {r} <b>*live*</b> | x",
     "channel": "Chan | One"},
]


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    """A corpus whose two speakers look like a LibriVox reader and a YouTube channel, built twice into two
    folders of the same name: (manifest, first output, second output)."""
    root = tmp_path_factory.mktemp("card")
    manifest = make_corpus(root / "corpus", speakers=2, recordings=3)
    lines = [json.loads(ln) for ln in manifest.read_text().splitlines()]
    for line in lines:
        s, r = int(line["id"].split("-")[1][1:]), line["id"].split("-")[2][1:]
        line.update({k: v.format(r=r) for k, v in PROVENANCE[s].items()})
        line["source"] = ("librivox", "youtube")[s]
    manifest.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    outs = [root / f"run{i}" / "ds" for i in (1, 2)]
    for out in outs:
        build(manifest, out)
    return manifest, outs[0], outs[1]


@pytest.mark.slow
def test_build_writes_card_sources_and_manifest_copy(carded):
    manifest, out, again = carded
    assert (out / schema.MANIFEST_JSONL).read_bytes() == manifest.read_bytes()
    header, body = split_card((out / schema.CARD_MD).read_text())
    assert header["license"] == ["cc-by-3.0", "other"] and header["language"] == ["en"]
    assert header["pretty_name"] == "ds" and header["task_ids"] == ["speaker-identification"]
    check_markdown(body)
    meta = DatasetMeta.read(str(out))
    examples = sum(meta.split(s).examples for s in schema.SPLITS)
    lines = (out / schema.SOURCES_TSV).read_text().splitlines()[1:]
    rows = [dict(zip(SOURCES_COLUMNS, ln.split("\t"))) for ln in lines]
    assert len(rows) == 6 and sum(int(r["examples"]) for r in rows) == examples
    by_rec = {r["recording"]: r for r in rows}
    assert by_rec["test-s1-r2"]["attribution"] == ("Talk 2 <b>*live*</b> | x by Speaker 1 (channel Chan | One), "
                                                   "https://www.youtube.com/watch?v=v12, " + YOUTUBE_CC)
    assert by_rec["test-s0-r0"]["hf_license"] == "public-domain" and by_rec["test-s0-r0"]["language"] == "English"
    for split in schema.SPLITS:  # each recording's split agrees with the split table
        assert sum(int(r["examples"]) for r in rows if r["split"] == split) == meta.split(split).examples
    for name in (schema.CARD_MD, schema.SOURCES_TSV, schema.MANIFEST_JSONL):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


@pytest.mark.slow
def test_the_card_is_rendered_again_with_an_audit(carded, tmp_path):
    _, built, _ = carded
    out = tmp_path / "ds"
    shutil.copytree(built, out)
    before = (out / schema.CARD_MD).read_bytes()
    assert card.main([str(out)]) == 0
    assert (out / schema.CARD_MD).read_bytes() == before  # the same card from the folder's files
    rows = (out / schema.SOURCES_TSV).read_text().splitlines()[1:]
    recs = [dict(zip(SOURCES_COLUMNS, r.split("\t"))) for r in rows]
    audit = [{"id": r["recording"], "speaker": r["speaker"], "verdict": v, "reasons": c}
             for r, (v, c) in zip(recs, [("keep", []), ("flag", ["low_snr"]), ("keep", []), ("keep", []),
                                         ("reject", ["clipped", "low_snr"]), ("keep", [])])]
    (out / schema.AUDIT_JSONL).write_text("".join(json.dumps(a) + "\n" for a in audit))
    assert card.main([str(out)]) == 0
    _, body = split_card((out / schema.CARD_MD).read_text())
    check_markdown(body)
    assert "6 recordings audited (`audit.jsonl`): keep 4, flag 1, reject 1." in body
    assert "| clipped | 0 | 1 |" in body and "| low\\_snr | 1 | 1 |" in body
    assert "- Speaker 0 (test:s0): flagged 1, rejected 0" in body
    assert "- Speaker 1 (test:s1): flagged 0, rejected 1" in body


def test_refresh_of_a_folder_without_a_dataset_is_one_line(tmp_path, capsys):
    assert card.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "dataset.json" in err


def test_refresh_without_sources_tsv_is_one_line(tmp_path, capsys):
    (tmp_path / schema.DATASET_JSON).write_text(meta_of().to_text())
    assert card.main([str(tmp_path)]) == 2
    assert "holds no sources.tsv" in capsys.readouterr().err


def test_meta_of_round_trips():  # the hand-made metadata above is a valid dataset.json
    meta = meta_of()
    assert dataclasses.asdict(DatasetMeta.from_text(meta.to_text()).counts) == dataclasses.asdict(meta.counts)
