"""pipelines.dataset_page: OUT/report/index.html from the dataset's files. Without a browser: a synthetic
dataset of 3,000 speakers (dataset.json, speakers.tsv, errors/, provenance, no shards) renders in bounded time
with one row per speaker and every data string escaped; rejects and the audit are grouped with examples. In
headless Chromium (slow): the table sorts on a click, the sample players' WAV files hold the shards' audio, and
nothing is wider than the viewport at 3,000 speakers."""
from __future__ import annotations

import json
import re
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from pipelines import dataset_page, finalize, output_dir, schema
from pipelines.config import BuildConfig
from pipelines.dataset_meta import Counts, DatasetMeta, SplitAudit, SplitInfo
from pipelines.rejection import Rejection
from tests.conftest import read_split

HOSTILE = "<script>alert('x')</script>&\"q\""


def synthetic_dataset(out: Path, n: int, rejects=(), audit_lines=None) -> Path:
    """The files the page reads, as finalize writes them, for `n` speakers and no shards."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {f"librivox:{i:05d}": {"train": (30.0 + (i * 37) % 500, 30 + i % 7), "test": (5.0, 5)} for i in range(n)}
    names = {k: f"Reader {i}" for i, k in enumerate(rows)}
    names["librivox:00001"] = HOSTILE
    (out / schema.SPEAKERS_TSV).write_text(finalize.speakers_tsv(rows, names, {k: i for i, k in enumerate(rows)}))
    finalize.write_errors(str(out), list(rejects))
    config = BuildConfig(manifest="m.jsonl", features=("log_mel",))
    splits = {"train": SplitInfo(examples=sum(r["train"][1] for r in rows.values()), seconds=1.0),
              "test": SplitInfo(examples=5 * n)}
    meta = DatasetMeta(name="synthetic", config=config, feature_config=config.feature_config, splits=splits,
                       counts=Counts(inputs=2 * n + len(rejects), recordings_with_segments=2 * n, rejected=len(rejects)),
                       split_audit=SplitAudit(holds=True, property="p"), num_speakers=n, speech_seconds=3600.0)
    (out / schema.DATASET_JSON).write_text(meta.to_text())
    planned = [{"id": f"r{i}-{j}", "speaker": k, "recording": f"r{i}-{j}", "source": "librivox",
                "license": HOSTILE if i == 2 else "PD"} for i, k in enumerate(rows) for j in range(2)]
    dataset_page.write_provenance(str(out), planned)
    if audit_lines is not None:
        (out / schema.AUDIT_JSONL).write_text("".join(
            (x if isinstance(x, str) else json.dumps(x)) + "\n" for x in audit_lines))
    return out


def speaker_rows(html: str):
    table = html.split("id=\"speakers\"", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]  # [0] is the heading row


def test_3000_speakers_render_in_bounded_time_with_one_row_each(tmp_path):
    out = synthetic_dataset(tmp_path / "ds", 3000)
    t0 = time.perf_counter()
    files = dataset_page.render(str(out))
    seconds = time.perf_counter() - t0
    html = files["index.html"].decode()
    assert seconds < 5.0, seconds
    rows = speaker_rows(html)
    assert len(rows) == 3000
    assert "librivox:00000" in rows[0] and "librivox:02999" in rows[-1]
    # charts are fixed-size SVG: 30 bars at most, whatever the number of speakers
    assert html.count("<svg") == 2 and html.count("<rect") <= 30
    assert re.search(r"<b>3000</b><span>speakers</span>", html) and "<b>6000</b><span>recordings</span>" in html
    assert len(files) == 1  # no shards: no samples, and the page says so
    assert "stores no audio feature" in html
    assert len(html) < 3000 * 1200, len(html)


def test_every_string_from_the_data_is_escaped_and_nothing_is_fetched(tmp_path):
    bad = Rejection(id=HOSTILE, path="/x/<img src=x onerror=alert(1)>.wav", stage="decode", reason="undecodable",
                    message=HOSTILE)
    out = synthetic_dataset(tmp_path / "ds", 5, rejects=[bad])
    html = dataset_page.render(str(out))["index.html"].decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;q&quot;" in html
    assert html.count("<script>") == 1  # the page's own sorting code
    # self-contained: no URL but the SVG namespace, sources only relative or data:
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}
    assert all(not re.match(r"[a-z]+:", s) or s.startswith("data:") for s in re.findall(r"src=\"([^\"]*)\"", html))


def test_rejects_by_stage_and_reason_with_five_examples(tmp_path):
    rejects = [Rejection(id=f"rec-{i}", path=f"a/{i}.wav", stage="decode", reason="undecodable", message=f"bad {i}")
               for i in range(7)] + [Rejection(id="m1", path="", stage="manifest", reason="bad_json", message="oops")]
    out = synthetic_dataset(tmp_path / "ds", 3, rejects=rejects)
    groups = dataset_page.read_rejects(str(out))
    assert list(groups) == [("decode", "undecodable"), ("manifest", "bad_json")]
    assert groups[("decode", "undecodable")].count == 7
    assert [r.id for r in groups[("decode", "undecodable")].examples] == [f"rec-{i}" for i in range(5)]
    html = dataset_page.render(str(out))["index.html"].decode()
    section = html.split("id=\"rejects\"", 1)[1].split("</table>", 1)[0]
    assert "rec-4" in section and "rec-5" not in section and "oops" in section


def test_audit_verdicts_per_speaker_and_its_numbers_generically(tmp_path):
    lines = [{"id": "r0-0", "speaker": "librivox:00000", "verdict": "keep", "reasons": [], "snr_db": 30.0,
              "quality": {"bandwidth_hz": 7000}, "note": "text is ignored"},
             {"id": "r0-1", "speaker": "librivox:00000", "verdict": "flag", "reasons": ["low_snr"], "snr_db": 8.0},
             {"id": "r1-0", "speaker": "librivox:00001", "verdict": "reject", "reasons": ["clipped", "low_snr"],
              "snr_db": 5.0, "new_field": 1}]
    out = synthetic_dataset(tmp_path / "ds", 3, audit_lines=lines)
    audit = dataset_page.read_audit(str(out))
    assert audit.verdicts == ("keep", "flag", "reject") and audit.lines == 3
    assert audit.per_speaker["librivox:00000"] == {"keep": 1, "flag": 1}
    assert audit.numbers == ("new_field", "quality.bandwidth_hz", "snr_db")
    assert audit.medians["librivox:00000"]["snr_db"] == 19.0
    assert audit.reasons[("reject", "low_snr")].count == 1 and audit.reasons[("flag", "low_snr")].count == 1
    html = dataset_page.render(str(out))["index.html"].decode()
    head = html.split("id=\"speakers\"", 1)[1].split("</thead>", 1)[0]
    assert ">keep<" in head and ">reject<" in head and ">median snr_db<" in head
    first = speaker_rows(html)[0]
    assert "data-v=\"19.0\">19.000<" in first
    # absent: the page says so and has no verdict columns
    (out / schema.AUDIT_JSONL).unlink()
    html = dataset_page.render(str(out))["index.html"].decode()
    assert "No audit.jsonl" in html and ">keep<" not in html


@pytest.mark.parametrize("line, message", [
    ("{not json", "audit.jsonl line 2: not JSON"),
    (json.dumps({"id": "x", "verdict": "keep"}), "audit.jsonl line 2: expected an object"),
    (json.dumps({"speaker": "a", "verdict": "keep", "reasons": "low_snr"}), "line 2: \"reasons\" is not a list"),
])
def test_a_bad_audit_line_is_a_one_line_error(tmp_path, capsys, line, message):
    good = {"id": "r", "speaker": "librivox:00000", "verdict": "keep", "reasons": []}
    out = synthetic_dataset(tmp_path / "ds", 2, audit_lines=[good, line])
    with pytest.raises(dataset_page.ReportError, match=re.escape(message)):
        dataset_page.render(str(out))
    assert dataset_page.main([str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unreadable_provenance_is_a_one_line_error(tmp_path):
    out = synthetic_dataset(tmp_path / "ds", 2)
    (out / "report" / "provenance.json").write_text("[1]")
    with pytest.raises(dataset_page.ReportError, match="provenance.json is not an object of objects"):
        dataset_page.render(str(out))


def test_sample_file_names_are_safe_and_report_files_belong_to_the_builder(tmp_path):
    names = [dataset_page.audio_name(i, s) for i, s in enumerate(["../../etc/passwd", "a:b", "a_b", "/", ""])]
    assert all("/" not in n and not n.startswith(".") and n.endswith(".wav") for n in names)
    assert len(set(names)) == len(names)
    # report/index.html, report/audio/ and report/provenance.json live in report/, which the builder owns
    out = synthetic_dataset(tmp_path / "ds", 2)
    dataset_page.write_page(str(out))
    (out / "report" / "audio").mkdir()
    (out / "report" / "audio" / "0000-x.wav").write_bytes(b"RIFF")
    config = BuildConfig(manifest=str(tmp_path / "m.jsonl"))
    assert output_dir.owned(schema.REPORT_DIR, config)
    output_dir.check_output(str(out), config, overwrite=True)
    output_dir.remove_owned(str(out), config)
    assert not (out / "report").exists()


# ---------------------------------------------------------------------------------------------- browser
def sort_values(driver, column: int):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#speakers tbody tr')).map("
        "r => r.cells[arguments[0]].getAttribute('data-v') ?? r.cells[arguments[0]].textContent)", column)


def column_of(driver, name: str) -> int:
    heads = [th.text.strip(" ▲▼") for th in driver.find_elements("css selector", "#speakers thead th")]
    return heads.index(name)


@pytest.mark.slow
def test_built_dataset_page_in_chromium(small_dataset, chromium, tmp_path):
    out, meta = small_dataset
    page = out / "report" / "index.html"
    chromium.get(page.as_uri())
    rows = chromium.find_elements("css selector", "#speakers tbody tr")
    tsv = [ln.split("\t")[0] for ln in (out / "speakers.tsv").read_text().splitlines()[1:]]
    assert len(rows) == len(tsv) == meta.num_speakers == 3
    prov = json.loads((out / "report" / "provenance.json").read_text())
    assert prov["test:s0"] == {"recordings": 4, "sources": ["test"], "licenses": ["CC0"]}

    seconds = column_of(chromium, "seconds")
    chromium.find_elements("css selector", "#speakers thead th")[seconds].click()
    up = [float(v) for v in sort_values(chromium, seconds)]
    assert up == sorted(up)
    chromium.find_elements("css selector", "#speakers thead th")[seconds].click()
    down = [float(v) for v in sort_values(chromium, seconds)]
    assert down == sorted(up, reverse=True)
    speaker = column_of(chromium, "speaker")
    chromium.find_elements("css selector", "#speakers thead th")[speaker].click()
    assert [r.find_elements("tag name", "td")[speaker].text for r in
            chromium.find_elements("css selector", "#speakers tbody tr")] == sorted(tsv)

    players = chromium.find_elements("css selector", "#speakers audio")
    assert len(players) == 3 and all(p.get_attribute("preload") == "none" for p in players)
    examples = {r["id"]: r for split in schema.SPLITS for r in read_split(out, split)}
    for p in players:
        src = p.get_attribute("src")
        assert src.startswith(page.parent.as_uri() + "/audio/")
        wav_path = Path(src[len("file://"):])
        assert wav_path.exists()
        with wave.open(str(wav_path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        ex = examples[p.get_attribute("title")]
        expected = np.round(ex["audio"][:ex["num_valid_samples"]] * 32768).astype(np.int16)
        assert samples.size == ex["num_valid_samples"] > 0 and np.array_equal(samples, expected)
    shot = tmp_path / "dataset_page.png"
    assert chromium.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_3000_speakers_fit_the_viewport_and_sort_in_chromium(chromium, tmp_path):
    out = synthetic_dataset(tmp_path / "ds", 3000)
    dataset_page.write_page(str(out))
    chromium.get((out / "report" / "index.html").as_uri())
    assert chromium.execute_script("return document.querySelectorAll('#speakers tbody tr').length") == 3000
    assert chromium.execute_script("return document.body.scrollWidth <= window.innerWidth")
    wide = chromium.execute_script(
        "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > "
        "window.innerWidth + 1 && !e.closest('.scroll')).length")
    assert wide == 0
    column = column_of(chromium, "seconds")
    chromium.find_elements("css selector", "#speakers thead th")[column].click()
    values = [float(v) for v in sort_values(chromium, column)]
    assert values == sorted(values) and len(values) == 3000
    shot = tmp_path / "dataset_page_3000.png"
    assert chromium.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_sampling_reads_at_most_the_cap_and_takes_the_first_example_of_each_speaker(small_dataset):
    out, meta = small_dataset
    found, read = dataset_page.sample_audio(str(out), meta, ["test:s0", "test:s1", "test:s2"], max_examples=2)
    assert read == 2 and len(found) <= 2
    found, read = dataset_page.sample_audio(str(out), meta, ["test:s1", "nobody"], max_examples=10 ** 6)
    assert read == sum(meta.examples(s) for s in schema.SPLITS)  # "nobody" is never found: every example read
    first = next(r for r in read_split_in_shard_order(out, meta) if r[0] == "test:s1")
    assert found["test:s1"][0] == first[1] and set(found) == {"test:s1"}


def read_split_in_shard_order(out, meta):
    """(speaker, id) of every example in shard order, read with tf.data (not the code under test)."""
    import tensorflow as tf

    files = [f for split in schema.SPLITS for f in meta.files(str(out), split)]
    for record in tf.data.TFRecordDataset(files).as_numpy_iterator():
        ex = tf.io.parse_single_example(record, {k: tf.io.FixedLenFeature([], tf.string)
                                                 for k in (schema.SPEAKER, schema.ID)})
        yield ex[schema.SPEAKER].numpy().decode(), ex[schema.ID].numpy().decode()
