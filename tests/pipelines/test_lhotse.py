"""pipelines.lhotse: Lhotse manifests written from a built dataset, and read back as our manifest."""
from __future__ import annotations

import gzip
import json

import pytest

from pipelines import lhotse, schema
from pipelines.manifest import parse_line
from tests.conftest import build, shard_bytes


def write_jsonl(path, items, gz=False):
    text = "".join(json.dumps(i) + "\n" for i in items).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return str(path)


def rec(rid, path="/data/a.flac", kind="file", sources=None, **kw):
    return {"id": rid, "sources": sources or [{"type": kind, "channels": [0], "source": path}],
            "sampling_rate": 16000, "num_samples": 160000, "duration": 10.0, "channel_ids": [0], **kw}


def sup(sid, rid, speaker=None, start=0.0, duration=5.0, **kw):
    out = {"id": sid, "recording_id": rid, "start": start, "duration": duration, "channel": 0, **kw}
    if speaker is not None:
        out["speaker"] = speaker
    return out


def test_recording_and_supervision_from_a_summary():
    summary = {"id": "lv-1", "path": "/audio/x.mp3", "speaker": "librivox:9", "speaker_name": "Ann", "language": "en",
               "decoded_s": 12.5, "speech_s": 10.0, "used_s": 8.0, "input_sample_rate": 44100, "channels": "stereo",
               "split": "validation", "group": "book1", "license": "PD", "source": "librivox"}
    r, s = lhotse.recording_and_supervision(summary)
    assert r == {"id": "lv-1", "sampling_rate": 44100, "num_samples": 551250, "duration": 12.5, "channel_ids": [0, 1],
                 "sources": [{"type": "file", "channels": [0, 1], "source": "/audio/x.mp3"}]}
    assert (s["recording_id"], s["start"], s["duration"], s["channel"]) == ("lv-1", 0.0, 12.5, [0, 1])
    assert s["speaker"] == "librivox:9" and s["language"] == "en"
    assert s["custom"] == {"kept_seconds": 8.0, "split": "validation", "speaker_name": "Ann", "group": "book1",
                           "license": "PD", "source": "librivox"}
    r2, _ = lhotse.recording_and_supervision({**summary, "path": "gs://b/x.mp3", "channels": "mono"})
    assert r2["sources"][0]["type"] == "url" and r2["channel_ids"] == [0]


def test_import_skips_and_reports_what_it_cannot_use(tmp_path, capsys):
    recordings = write_jsonl(tmp_path / "r.jsonl.gz", [
        rec("ok", "/data/ok.flac"),
        rec("two", "/data/two.flac"),
        rec("multi", sources=[{"type": "file", "channels": [0], "source": "/d/a.wav"},
                              {"type": "file", "channels": [1], "source": "/d/b.wav"}]),
        rec("cmd", "sox x.wav -t wav -", kind="command"),
        rec("perturbed", "/data/p.flac", transforms=[{"name": "Speed", "kwargs": {"factor": 1.1}}]),
        rec("silent", "/data/s.flac"),
        rec("bad\tid", "/data/b.flac"),
        rec("ok", "/data/again.flac"),
        rec("remote", "gs://bucket/r.flac", kind="url"),
        rec("relative", "audio/rel.flac"),
    ], gz=True)
    supervisions = write_jsonl(tmp_path / "s.jsonl", [
        sup("ok-1", "ok", "1089", language="English"), sup("ok-2", "ok", "1089", start=5.0),
        sup("two-1", "two", "A"), sup("two-2", "two", "B"),
        sup("multi-1", "multi", "C"), sup("cmd-1", "cmd", "C"), sup("perturbed-1", "perturbed", "C"),
        sup("silent-1", "silent"), sup("bad-1", "bad\tid", "D"),
        sup("remote-1", "remote", "x:E"), sup("relative-1", "relative", "F"), sup("orphan-1", "nowhere", "G"),
    ])
    out = tmp_path / "manifest.jsonl"
    code = lhotse.main(["import", "--recordings", recordings, "--supervisions", supervisions, "--output", str(out),
                        "--source", "libri"])
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    reasons = {line.split(": ")[1].split(" ", 1)[1]: line.split(": ")[2] for line in err}
    assert reasons == {"two": "several_speakers", "multi": "multi_source", "cmd": "not_a_file",
                       "perturbed": "transforms", "silent": "no_speaker", "bad\tid": "invalid_field",
                       "ok": "duplicate_id", "nowhere": "no_recording"}
    assert "A, B" in next(line for line in err if "several_speakers" in line)
    records = [parse_line(line, str(tmp_path)) for line in out.read_text().splitlines()]
    by_id = {r.id: r for r in records}
    assert sorted(by_id) == ["ok", "relative", "remote"]
    assert by_id["ok"].speaker == "libri:1089" and by_id["ok"].language == "English"
    assert by_id["ok"].path == "/data/ok.flac" and by_id["ok"].duration_s == 10.0
    assert by_id["remote"].speaker == "x:E" and by_id["remote"].path == "gs://bucket/r.flac"
    assert by_id["relative"].path.endswith("/audio/rel.flac") and by_id["relative"].path.startswith("/")


def test_not_a_lhotse_manifest_is_one_line(tmp_path, capsys):
    sups = write_jsonl(tmp_path / "s.jsonl", [sup("a", "a", "x")])
    code = lhotse.main(["import", "--recordings", sups, "--supervisions", sups, "--output", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "not a Recording" in err and "\n" not in err
    assert lhotse.main(["export", str(tmp_path), str(tmp_path / "dest")]) == 2
    assert "holds no dataset.json" in capsys.readouterr().err


@pytest.mark.slow
def test_round_trip_export_import_build(small_corpus, small_dataset, tmp_path, capsys):
    out, meta = small_dataset
    dest = tmp_path / "lhotse"
    assert lhotse.main(["export", str(out), str(dest)]) == 0
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(f"out_{kind}_{split}.jsonl.gz" for kind in ("recordings", "supervisions")
                           for split in schema.SPLITS)
    recs = [json.loads(x) for x in gzip.decompress((dest / "out_recordings_train.jsonl.gz").read_bytes()).splitlines()]
    sups = [json.loads(x) for x in gzip.decompress((dest / "out_supervisions_train.jsonl.gz").read_bytes()).splitlines()]
    assert len(recs) == len(sups) == meta.split("train").recordings
    # every corpus file: 7.7 s decoded at 16 kHz, 5.8 s of it kept as segments after stripping pauses
    assert {(r["sampling_rate"], r["num_samples"], r["duration"]) for r in recs} == {(16000, 123200, 7.7)}
    assert all(s["custom"]["kept_seconds"] == 5.8 and s["custom"]["split"] == "train" for s in sups)
    assert all(r["sources"][0]["source"].startswith(str(small_corpus.parent)) for r in recs)

    manifest = tmp_path / "imported.jsonl"
    files = sorted(str(p) for p in dest.iterdir())
    assert lhotse.main(["import", "--recordings", *[f for f in files if "_recordings_" in f],
                        "--supervisions", *[f for f in files if "_supervisions_" in f], "--output", str(manifest)]) == 0
    assert "12 recording(s), 3 speaker(s); 0 skipped" in capsys.readouterr().out
    again = tmp_path / "again"
    meta2 = build(manifest, again)
    assert (again / "speakers.tsv").read_text() == (out / "speakers.tsv").read_text()
    assert meta2.splits == meta.splits
    assert shard_bytes(again) == shard_bytes(out)  # same ids, speakers, provenance: the same examples


def test_export_of_a_dataset_without_recordings_jsonl_says_to_rebuild(tmp_path, capsys):
    (tmp_path / "dataset.json").write_text(json.dumps({"config": {"manifest": "m.jsonl"},
                                                       "feature_config": {"segment_samples": 16000}}))
    assert lhotse.main(["export", str(tmp_path), str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no readable recordings.jsonl; rebuild it" in err and "\n" not in err
    assert not (tmp_path / "dest").exists()
