"""End to end: manifest/folder -> build_dataset (DirectRunner) -> shards read back with tf.data."""
from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines import schema
from tests.conftest import SHARED_DATA, build, make_corpus, read_split, shard_bytes, utterance
from pipelines.decode import write_wav

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow


def test_shards_read_back_with_schema(small_dataset):
    out, meta = small_dataset
    assert meta.counts.add_up and meta.counts.rejected == 0
    assert meta.counts.inputs == 12 and meta.counts.recordings_with_segments == 12
    total = 0
    shapes = meta.feature_shapes()
    for split in schema.SPLITS:
        rows = read_split(out, split)
        assert len(rows) == meta.examples(split)
        total += len(rows)
        for r in rows:
            assert r["audio"].shape == tuple(shapes["audio"]) == (16000,)
            assert r["fft"].shape == tuple(shapes["fft"]) == (8000,)
            assert r["log_mel"].shape == tuple(shapes["log_mel"]) == (98, 64)
            assert r["sample_rate"] == 16000 and r["num_valid_samples"] == 16000
            assert r["id"].startswith(r["recording"] + "-")
    assert total > 0
    assert len({r["id"] for s in schema.SPLITS for r in read_split(out, s)}) == total


def test_stored_fft_is_the_keras_examples_fft_of_the_stored_audio(small_dataset):
    out, _ = small_dataset
    rows = read_split(out, "train")[:5]
    for r in rows:
        audio = r["audio"].astype(np.float64)
        expected = np.abs(np.fft.fft(audio))[: audio.size // 2]
        np.testing.assert_allclose(r["fft"], expected, rtol=1e-3, atol=1e-2)


def test_split_is_leakage_free_and_audited(small_dataset):
    out, meta = small_dataset
    rec_splits, spk_splits = collections.defaultdict(set), collections.defaultdict(set)
    for split in schema.SPLITS:
        for r in read_split(out, split):
            rec_splits[r["recording"]].add(split)
            spk_splits[r["speaker"]].add(split)
    assert all(len(s) == 1 for s in rec_splits.values())
    assert all("train" in s for s in spk_splits.values())
    # 4 recordings per speaker: every speaker has a recording in each split
    assert all(s == set(schema.SPLITS) for s in spk_splits.values())
    audit = meta.split_audit
    assert audit.holds and audit.recordings_in_more_than_one_split == 0
    assert audit.speakers_missing_from_train == 0 and audit.recordings == 12


def test_speakers_tsv_and_report(small_dataset):
    out, meta = small_dataset
    rows = [ln.split("\t") for ln in (out / "speakers.tsv").read_text().splitlines()]
    header, body = rows[0], rows[1:]
    assert header[:3] == ["speaker", "name", "label"]
    assert [r[0] for r in body] == ["test:s0", "test:s1", "test:s2"]
    seg_idx = header.index("train_segments")
    # labels follow tf.Transform's vocabulary order: most train segments first, ties reverse-lexicographic
    by_label = sorted(body, key=lambda r: int(r[2]))
    assert [r[2] for r in by_label] == ["0", "1", "2"]
    for a, b in zip(by_label, by_label[1:]):
        assert (int(a[seg_idx]), a[0]) > (int(b[seg_idx]), b[0])
    assert sum(int(r[seg_idx]) for r in body) == meta.examples("train")
    report = (out / "report" / "README.md").read_text()
    assert "holds" in report
    for png in ("durations.png", "seconds_per_speaker.png", "rejects_by_reason.png"):
        assert (out / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / ".tmp").exists()


def test_silence_is_stripped_before_segmenting(small_dataset):
    _, meta = small_dataset
    # each recording: 5.1 s of bursts, pauses 0.8 + 0.3 + 1.5 s; the two long ones keep 2 x 0.1 s padding
    expected_speech = 5.1 + 0.3 + 0.2 + 0.2
    per_recording = meta.speech_seconds / 12
    assert abs(per_recording - expected_speech) < 0.05, per_recording


def test_two_runs_give_identical_shards(small_corpus, small_dataset, tmp_path):
    out, _ = small_dataset
    again = tmp_path / "again"
    build(small_corpus, again)
    assert shard_bytes(again) == shard_bytes(out)
    assert (again / "speakers.tsv").read_text() == (out / "speakers.tsv").read_text()
    # the HTML report and its samples too (the page's title names the folder)
    page = (again / "report" / "index.html").read_text().replace("Dataset report: again", "Dataset report: out")
    assert page == (out / "report" / "index.html").read_text()
    samples = sorted(p.name for p in (out / "report" / "audio").iterdir())
    assert len(samples) == 3 and samples == sorted(p.name for p in (again / "report" / "audio").iterdir())
    assert all((again / "report" / "audio" / n).read_bytes() == (out / "report" / "audio" / n).read_bytes()
               for n in samples)


def test_multiprocess_direct_runner_gives_the_same_shards(small_corpus, small_dataset, tmp_path):
    out, _ = small_dataset
    multi = tmp_path / "multi"
    build(small_corpus, multi, "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
    assert shard_bytes(multi) == shard_bytes(out)


def test_rebuild_into_same_folder_same_config_is_allowed(small_corpus, tmp_path):
    out = tmp_path / "ds"
    first = build(small_corpus, out, "--features", "audio", "--num-shards", "2")
    before = shard_bytes(out)
    second = build(small_corpus, out, "--features", "audio", "--num-shards", "2")
    assert shard_bytes(out) == before and first.splits == second.splits
    assert len([n for n in before if n.startswith("train-")]) == 2


def _bad_inputs_corpus(root):
    root.mkdir(parents=True)
    audio = root / "audio"
    audio.mkdir()
    extra = []

    def add(name, **fields):
        rec = {"id": f"bad-{name}", "path": f"audio/{name}", "speaker": "test:s0", **fields}
        extra.append(rec)

    (audio / "empty.wav").write_bytes(b"")
    add("empty.wav")
    (audio / "text.mp3").write_text("this is not audio at all\n" * 20)
    add("text.mp3")
    write_wav(audio / "short.wav", utterance(150, (0.4,), seed=7))
    add("short.wav")
    write_wav(audio / "silence.wav", np.zeros(16000 * 3, np.int16))
    add("silence.wav")
    add("missing.wav")
    # a WAV header declaring an unknown sample format (format tag 0x1234)
    good = audio / "good.wav"
    write_wav(good, utterance(150, (3.0,), seed=9))
    data = bytearray(good.read_bytes())
    data[20:22] = (0x1234).to_bytes(2, "little")
    (audio / "unknown_format.wav").write_bytes(bytes(data))
    add("unknown_format.wav")
    # a truncated mp3: 20 s encoded, cut to a third
    src = audio / "long.wav"
    write_wav(src, utterance(150, (6.0, 0.3, 6.0, 0.3, 6.0), seed=11))
    from pipelines.decode_ffmpeg import find_ffmpeg

    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(src), "-b:a", "64k",
                    str(audio / "full.mp3")], check=True)
    full = (audio / "full.mp3").read_bytes()
    (audio / "truncated.mp3").write_bytes(full[: len(full) // 3])
    add("truncated.mp3")
    src.unlink()
    good.unlink()
    (audio / "full.mp3").unlink()
    manifest = make_corpus(root, speakers=1, recordings=1, extra=extra)
    text = manifest.read_text()
    text += "{not json\n"
    text += json.dumps({"id": "bad-nopath", "speaker": "test:s0"}) + "\n"
    text += json.dumps({"id": "test-s0-r0", "path": "audio/spk0/rec0.wav", "speaker": "test:s0"}) + "\n"  # duplicate id
    manifest.write_text(text)
    return manifest


EXPECTED_REASONS = {
    "bad-empty.wav": "empty_file", "bad-text.mp3": "undecodable", "bad-short.wav": "too_short",
    "bad-silence.wav": "silent", "bad-missing.wav": "missing_file", "bad-unknown_format.wav": "undecodable",
    "bad-truncated.mp3": "truncated", "line-9": "invalid_json", "line-10": "missing_field",
    "test-s0-r0": "duplicate_id",
}


def test_bad_inputs_become_rejection_records_and_the_job_finishes(tmp_path):
    manifest = _bad_inputs_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    meta = build(manifest, out)
    records = [json.loads(ln) for f in sorted((out / "errors").glob("*.jsonl")) for ln in f.read_text().splitlines()]
    got = {r["id"]: r["reason"] for r in records}
    assert got == EXPECTED_REASONS
    for r in records:
        assert set(r) >= {"id", "path", "stage", "reason", "message"} and r["message"]
    c = meta.counts
    assert c.inputs == 11
    assert c.inputs == c.recordings_with_segments + c.rejected and c.add_up
    assert c.rejected == len(EXPECTED_REASONS) and c.recordings_with_segments == 1
    assert read_split(out, "train")  # the good recording still made it


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.build_dataset", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("flags, message", [
    (["--segment-seconds", "0"], "--segment-seconds must be > 0"),
    (["--split-fractions", "0.5,0.5"], "--split-fractions"),
    (["--features", "audio,mfcc"], "--features: unknown mfcc"),
    (["--no-such-flag", "1"], "unrecognized arguments"),
    (["--min-pause-seconds", "0.1", "--silence-padding-seconds", "0.1"], "--silence-padding-seconds"),
    (["--max-seconds-per-speaker", "5", "--min-seconds-per-speaker", "10"], "below --min-seconds-per-speaker"),
])
def test_bad_flags_fail_before_any_work(small_corpus, tmp_path, flags, message):
    out = tmp_path / "out"
    proc = _run_cli("--manifest", str(small_corpus), "--output", str(out), *flags)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_manifest_fails_with_one_line(tmp_path):
    proc = _run_cli("--manifest", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no such file" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_output_holding_a_different_dataset_is_refused(small_corpus, small_dataset, tmp_path):
    out, _ = small_dataset
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = shard_bytes(copy)
    proc = _run_cli("--manifest", str(small_corpus), "--output", str(copy), "--segment-seconds", "2")
    assert proc.returncode == 2
    assert "another configuration" in proc.stderr and "segment_seconds" in proc.stderr
    assert shard_bytes(copy) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    proc = _run_cli("--manifest", str(small_corpus), "--output", str(tmp_path / "other"), "--overwrite")
    assert proc.returncode == 2 and "did not write (notes.txt)" in proc.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_caps_minimums_speaker_split_hop_pad_gzip(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", speakers=4, recordings=3)
    # speaker 3 has only one short recording: below the minimum
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    lines = [x for x in lines if not (x["speaker"] == "test:s3" and not x["id"].endswith("r0"))]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    meta = build(manifest, out, "--max-seconds-per-speaker", "8", "--min-seconds-per-speaker", "7",
                 "--split-by", "speaker", "--split-fractions", "0.5,0.25,0.25", "--segment-seconds", "0.5",
                 "--hop-seconds", "0.25", "--partial", "pad", "--gzip", "--features", "audio,spectrogram")
    errors = [json.loads(ln) for ln in (out / "errors" / "plan.jsonl").read_text().splitlines()]
    assert {e["id"] for e in errors if e["reason"] == "speaker_below_min_seconds"} == {"test-s3-r0"}
    assert all(e["reason"] in ("speaker_below_min_seconds", "speaker_cap_reached") for e in errors)
    assert meta.counts.add_up
    rows = [r for s in schema.SPLITS for r in read_split(out, s)]
    by_speaker = collections.defaultdict(list)
    for r in rows:
        by_speaker[r["speaker"]].append(r)
    assert sorted(by_speaker) == ["test:s0", "test:s1", "test:s2"]
    # the cap is on speech seconds taken: 8 s per speaker, consumed in id order
    for speaker, items in by_speaker.items():
        recs = {r["recording"] for r in items}
        assert "test-" + speaker.split(":")[1] + "-r0" in recs
        starts = sorted(r["start_s"] for r in items if r["recording"].endswith("r0"))
        assert np.allclose(np.diff(starts), 0.25)  # hop
    spk_splits = {k: {s for s in schema.SPLITS if any(r["speaker"] == k for r in read_split(out, s))} for k in by_speaker}
    assert all(len(v) == 1 for v in spk_splits.values())
    assert meta.split_audit.holds and meta.split_audit.split_by == "speaker"
    assert all(name.endswith(".tfrecord.gz") for name in shard_bytes(out))
    assert all(r["spectrogram"].shape == (48, 257) for r in rows)
    padded = [r for r in rows if r["num_valid_samples"] < 8000]
    for r in padded:  # zero padding after the valid samples
        assert not r["audio"][r["num_valid_samples"]:].any()


def test_audio_dir_input_with_nested_folders(tmp_path):
    root = tmp_path / "speakers"
    for s, f0 in (("alice", 120), ("bob", 200)):
        for i in range(3):
            path = root / s / ("session1" if i < 2 else "session2") / f"clip{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, utterance(f0, (2.2, 0.9, 1.5), seed=i))
    (root / "alice" / "notes.txt").write_text("not audio")
    (root / "stray.wav").write_bytes(b"")  # no speaker folder: a rejection, never ignored
    out = tmp_path / "out"
    meta = build(root, out, audio_dir=True)
    rows = [r for s in schema.SPLITS for r in read_split(out, s)]
    assert {r["speaker"] for r in rows} == {"local:alice", "local:bob"}
    assert {r["recording"] for r in rows} >= {"local-alice-session1_clip0.wav", "local-bob-session2_clip2.wav"}
    rejected = [json.loads(ln) for ln in (out / "errors" / "manifest.jsonl").read_text().splitlines()]
    assert sorted((r["reason"], r["path"].rsplit("/", 1)[1]) for r in rejected) == [
        ("no_speaker_folder", "stray.wav"), ("not_audio", "notes.txt")]
    assert meta.counts.inputs == 8 and meta.counts.add_up
    derived = [json.loads(ln) for ln in (out / schema.MANIFEST_JSONL).read_text().splitlines()]
    assert len(derived) == 6 and all(r["path"].startswith(str(root)) for r in derived)  # derived once, not copied
    sources = [ln.split("\t") for ln in (out / schema.SOURCES_TSV).read_text().splitlines()[1:]]
    assert sorted(r[5] for r in sources) == sorted({r["recording"] for r in rows})
    assert "Input: a folder of audio (`--audio-dir`)" in (out / schema.CARD_MD).read_text()


@pytest.mark.skipif(not (SHARED_DATA / "fsdd" / "recordings").is_dir(), reason="the real-data folder has no fsdd/")
def test_real_recordings_from_fsdd(tmp_path):
    """Real 8 kHz speech: six speakers, resampled to 16 kHz, 0.25 s segments."""
    rec_dir = SHARED_DATA / "fsdd" / "recordings"
    lines = []
    for path in sorted(rec_dir.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        if int(take) < 4 and int(digit) < 5:
            lines.append({"id": f"fsdd-{path.stem}", "path": str(path), "speaker": f"fsdd:{speaker}"})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    meta = build(manifest, out, "--segment-seconds", "0.25", "--features", "audio,log_mel")
    assert meta.counts.inputs == len(lines) == 6 * 5 * 4 and meta.counts.add_up
    assert meta.num_train_speakers == 6 and meta.split_audit.holds
    # FSDD has clips shorter than 0.25 s: those, and only those, are rejected as too short
    errors = [json.loads(ln) for f in (out / "errors").glob("*.jsonl") for ln in f.read_text().splitlines()]
    assert all(e["reason"] == "too_short" for e in errors)
    assert meta.counts.recordings_with_segments == len(lines) - len(errors) >= 0.8 * len(lines)
    rows = read_split(out, "train")
    assert rows and all(r["audio"].shape == (4000,) for r in rows)
    assert max(np.abs(r["audio"]).max() for r in rows) > 0.05  # real signal survived resampling


def test_examples_read_without_tensorflow_equal_tf_train_example(small_dataset):
    """pipelines.examples.parse_example (protobuf only, for the report in a main process without TensorFlow)
    reads every field of the written examples as tf.train.Example does."""
    import tensorflow as tf

    from pipelines.examples import parse_example
    from pipelines.shards import iter_tfrecords

    out, meta = small_dataset
    with open(meta.files(str(out), "train")[0], "rb") as f:
        records = list(iter_tfrecords(f))
    assert records
    for record in records[:20]:
        ours, theirs = parse_example(record), tf.train.Example.FromString(record).features.feature
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            kind = theirs[key].WhichOneof("kind")
            assert ours[key].WhichOneof("kind") == kind
            assert list(getattr(ours[key], kind).value) == list(getattr(theirs[key], kind).value)
