"""Hostile inputs to the builder: every manifest line and every file under --audio-dir ends as a record or a
rejection with a reason, the counts add up, nothing hangs, and bad flags or inputs fail in one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pipelines.decode_ffmpeg import find_ffmpeg
from tests.hostile.conftest import build, errors, one_line_error, voice, write_manifest

pytestmark = pytest.mark.slow


def counts(out):
    meta = json.loads((out / "dataset.json").read_text())
    return meta["counts"], meta


def test_hostile_manifest_lines_become_rejections_and_the_job_finishes(tmp_path):
    root = tmp_path / "corpus"
    good = voice(root / "a.wav", 140, 1)
    voice(root / "b.wav", 190, 2)
    folder = root / "folder.wav"
    folder.mkdir()
    fifo = root / "pipe.wav"
    os.mkfifo(fifo)
    ok = {"path": "a.wav", "speaker": "t:ann"}
    lines = [
        {"id": "good-a", **ok},
        {"id": "good-b", "path": "b.wav", "speaker": "t:bob"},
        {"id": "tab\tid", **ok},                                         # would break the shard merge
        {"id": "newline-speaker", "path": "a.wav", "speaker": "t:ann\nt:forged\t0"},  # would forge speakers.tsv rows
        {"id": "scheme", "path": "foo://bucket/a.wav", "speaker": "t:ann"},
        {"id": "dir-sha", "path": "folder.wav", "speaker": "t:ann", "sha256": "0" * 64},
        {"id": "fifo-sha", "path": "pipe.wav", "speaker": "t:ann", "sha256": "0" * 64},  # would hang forever
        {"id": "fifo", "path": "pipe.wav", "speaker": "t:ann"},
        {"id": "inf", **ok, "duration_s": 1e999},
        b'{"id": "latin1-\xe9", "path": "a.wav", "speaker": "t:ann"}',   # not UTF-8: never silently replaced
        "\u00a0\u2028",                                                  # odd white space: an input, not a blank
        "\x1c",
        "   ",                                                           # blank: not an input
        '[[[[[[[[[[' * 20000,                                            # nested too deeply
    ]
    manifest = write_manifest(root / "manifest.jsonl", lines)
    out = tmp_path / "ds"
    proc = build("--manifest", manifest, "--output", out, "--segment-seconds", "0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    c, meta = counts(out)
    assert c["inputs"] == len(lines) - 1 and c["add_up"]
    assert c["recordings_with_segments"] == 2  # good-a, good-b
    got = errors(out)
    assert got["dir-sha"] == "not_a_file" and got["fifo-sha"] == "not_a_file" and got["fifo"] == "not_a_file"
    assert got["line-3"] == "invalid_field" and got["line-4"] == "invalid_field"   # tab, newline
    assert got["line-5"] == "unsupported_path" and got["line-9"] == "invalid_field"  # foo://, 1e999
    assert got["line-10"] == "invalid_utf8" and got["line-11"] == got["line-12"] == got["line-14"] == "invalid_json"
    rows = (out / "speakers.tsv").read_text().splitlines()
    assert len(rows) == 1 + meta["num_speakers"] and not any("forged" in r for r in rows)
    assert (out / "manifest.jsonl").read_bytes() == manifest.read_bytes()  # the card's provenance, hostile lines too
    assert [r.split("\t")[5] for r in (out / "sources.tsv").read_text().splitlines()[1:]] == ["good-a", "good-b"]
    assert good.exists()


def test_an_empty_manifest_a_folder_and_a_fifo_are_one_line_errors(tmp_path):
    empty = write_manifest(tmp_path / "empty.jsonl", ["", "  "])
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for manifest, message in ((empty, "holds no record"), (tmp_path, "is a folder"), (fifo, "not a regular file"),
                              (tmp_path / "nope.jsonl", "no such file")):
        proc = build("--manifest", manifest, "--output", tmp_path / "out")
        assert proc.returncode == 2 and message in one_line_error(proc), message
    assert not (tmp_path / "out").exists()


def test_nothing_usable_is_an_error_not_an_empty_dataset(tmp_path):
    flat = tmp_path / "clips"
    for i in range(3):
        voice(flat / f"clip{i}.wav", 150 + 20 * i, i)  # no speaker folders: the Keras layout is <speaker>/<files>
    out = tmp_path / "ds"
    proc = build("--audio-dir", flat, "--output", out)
    assert proc.returncode == 1 and "no input became training data" in one_line_error(proc)
    c, _ = counts(out)
    assert c["inputs"] == 3 and c["rejected"] == 3 and c["add_up"]
    assert set(errors(out).values()) == {"no_speaker_folder"}


def test_every_file_under_the_audio_folder_is_a_record_or_a_reason(tmp_path):
    audio = tmp_path / "speakers"
    voice(audio / "ann" / "a1.wav", 140, 1)
    voice(audio / "ann" / "day2" / "a2.wav", 140, 2)
    elsewhere = tmp_path / "elsewhere" / "bob"
    voice(elsewhere / "b1.wav", 200, 3)
    (audio / "bob").symlink_to(elsewhere)  # a linked speaker folder: followed
    (audio / "ann" / "loop").symlink_to(audio)  # a loop: listed once, never followed forever
    (audio / "ann" / "gone.wav").symlink_to(tmp_path / "missing.wav")
    os.mkfifo(audio / "ann" / "pipe.wav")
    (audio / "ann" / ".DS_Store").write_bytes(b"x")
    (audio / "ann" / "notes.txt").write_text("x")
    voice(audio / "top.wav", 170, 4)
    bad_name = os.fsencode(str(audio / "ann")) + b"/caf\xe9.wav"
    shutil.copy(audio / "ann" / "a1.wav", bad_name)  # a name that is not UTF-8
    out = tmp_path / "ds"
    for attempt in range(2):  # a rerun is never blocked by what the first run wrote
        proc = build("--audio-dir", audio, "--output", out, "--segment-seconds", "0.5")
        assert proc.returncode == 0, proc.stderr[-3000:]
    c, meta = counts(out)
    reasons = errors(out)
    by_reason = sorted(reasons.values())
    assert by_reason == sorted(["symlink_loop", "broken_link", "not_a_file", "hidden", "not_audio",
                                "no_speaker_folder", "undecodable_name"]), reasons
    assert c["inputs"] == c["recordings_with_segments"] + c["rejected"] and c["recordings_with_segments"] == 3
    assert meta["num_speakers"] == 2  # ann, and bob through the link
    assert any("caf\\xe9.wav" in p for p in reasons)


def test_the_same_audio_under_several_ids_is_kept_once(tmp_path):
    root = tmp_path / "corpus"
    lines = []
    for s in range(3):
        for r in range(4):
            voice(root / f"s{s}" / f"r{r}.wav", 120 + 50 * s, 10 * s + r)
            lines.append({"id": f"s{s}-r{r}", "path": f"s{s}/r{r}.wav", "speaker": f"t:s{s}"})
    shutil.copy(root / "s0" / "r0.wav", root / "copy.wav")
    flac = root / "s1" / "r0.flac"  # another container, the same PCM
    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-i", str(root / "s1" / "r0.wav"), str(flac)],
                   check=True)
    lines += [{"id": "z-same-path", "path": "s0/r0.wav", "speaker": "t:s0"},
              {"id": "z-copy", "path": "copy.wav", "speaker": "t:s0"},
              {"id": "z-other-speaker", "path": "s0/r0.wav", "speaker": "t:s2"},
              {"id": "z-flac", "path": "s1/r0.flac", "speaker": "t:s1"}]
    manifest = write_manifest(root / "manifest.jsonl", lines)
    out = tmp_path / "ds"
    assert build("--manifest", manifest, "--output", out, "--split-fractions", "0.34,0.33,0.33").returncode == 0
    c, meta = counts(out)
    got = errors(out)
    assert {k for k, v in got.items() if v == "duplicate_audio"} == {"z-same-path", "z-copy", "z-other-speaker",
                                                                      "z-flac"}
    assert c["recordings_with_segments"] == 12 and c["add_up"]
    audit = meta["split_audit"]
    assert audit["holds"] and audit["audio_in_more_than_one_split"] == 0
    message = [json.loads(ln) for ln in (out / "errors" / "plan.jsonl").read_text().splitlines()]
    assert any("s0-r0" in m["message"] for m in message if m["id"] == "z-copy")
