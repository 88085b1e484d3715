"""Hostile outputs: the builder never deletes what it did not write, never overlaps its inputs, and fails
in one line (read-only folder, a file in the way, a full disk, a second build) leaving nothing half-built;
a build killed mid-way leaves a folder the same command builds into again."""
from __future__ import annotations

import errno
import fcntl
import json
import subprocess
import sys
import time

import pytest

from tests.conftest import make_corpus
from tests.hostile.conftest import REPO, build, one_line_error, voice

pytestmark = pytest.mark.slow


@pytest.fixture()
def corpus(tmp_path):
    return make_corpus(tmp_path / "corpus", speakers=2, recordings=3)


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_overwrite_never_deletes_files_the_builder_did_not_write(corpus, tmp_path):
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "thesis.tex").write_text("two years of work")
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"left by a crashed build")
    before = tree(out)
    for flags in ([], ["--overwrite"]):
        proc = build("--manifest", corpus, "--output", out, *flags)
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert "did not write (notes)" in line and "--overwrite" not in line
    assert tree(out) == before and (out / "notes" / "thesis.tex").read_text() == "two years of work"


@pytest.mark.parametrize("where", ["equal", "inside", "around"])
def test_output_and_audio_folder_never_overlap(tmp_path, where):
    audio = tmp_path / "speakers"
    voice(audio / "ann" / "a.wav")
    out = {"equal": audio, "inside": audio / "ann" / "ds", "around": tmp_path}[where]
    before = tree(tmp_path)
    for flags in ([], ["--overwrite"]):
        proc = build("--audio-dir", audio, "--output", out, *flags)
        assert proc.returncode == 2 and "audio-dir" in one_line_error(proc)
    assert tree(tmp_path) == before


def test_output_never_holds_the_manifest(corpus, tmp_path):
    before = tree(corpus.parent)
    proc = build("--manifest", corpus, "--output", corpus.parent, "--overwrite")
    assert proc.returncode == 2 and "holds the manifest" in one_line_error(proc)
    link = tmp_path / "link"
    link.symlink_to(corpus.parent)  # the same folder by another name
    proc = build("--manifest", corpus, "--output", link, "--overwrite")
    assert proc.returncode == 2 and "holds the manifest" in one_line_error(proc)
    assert tree(corpus.parent) == before


def test_overwrite_replaces_only_the_builders_own_files(corpus, tmp_path):
    out = tmp_path / "ds"
    assert build("--manifest", corpus, "--output", out).returncode == 0
    (out / "transform").mkdir()
    (out / "transform" / "keep.txt").write_text("preprocess output")
    proc = build("--manifest", corpus, "--output", out, "--segment-seconds", "0.5")
    assert proc.returncode == 2 and "--overwrite" in one_line_error(proc)  # another config: an explicit choice
    assert build("--manifest", corpus, "--output", out, "--segment-seconds", "0.5", "--overwrite").returncode == 0
    assert json.loads((out / "dataset.json").read_text())["config"]["segment_seconds"] == 0.5
    assert (out / "transform" / "keep.txt").exists()


def test_a_file_in_the_way_is_one_line(corpus, tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = build("--manifest", corpus, "--output", tmp_path / "afile" / "ds")
    assert proc.returncode == 2 and "is a file, not a folder" in one_line_error(proc)
    proc = build("--manifest", corpus, "--output", tmp_path / "afile")
    assert proc.returncode == 2 and "is a file, not a folder" in one_line_error(proc)


def test_read_only_output_is_one_line(corpus, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is needed to make a folder read-only for root")
    try:
        proc = build("--manifest", corpus, "--output", out)
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert proc.returncode in (1, 2) and "Operation not permitted" in one_line_error(proc)
    assert not list(out.iterdir())


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(corpus, tmp_path, monkeypatch, capsys):
    from pipelines import build_dataset, transforms

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "train-00000-of-00001.tfrecord")

    monkeypatch.setattr(transforms.MergeShardFn, "_write", full)
    out = tmp_path / "ds"
    assert build_dataset.main(["--manifest", str(corpus), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # no .tmp, no shard, no dataset.json
    monkeypatch.undo()
    assert build_dataset.main(["--manifest", str(corpus), "--output", str(out)]) == 0  # and a rerun just works


def test_a_second_build_into_the_same_folder_refuses_at_once(corpus, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with open(out / ".lock", "a") as held:  # as a build in progress holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = build("--manifest", corpus, "--output", out)
    assert proc.returncode == 2 and "another build" in one_line_error(proc)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert build("--manifest", corpus, "--output", out).returncode == 0  # released: the next build runs


def test_a_killed_build_leaves_a_folder_the_same_command_reuses(corpus, tmp_path):
    """SIGKILL once the shards are being written (no clean-up can run), then the same command, no --overwrite:
    it builds, and the folder ends as a build that was never interrupted (same files, same bytes)."""
    out, clean = tmp_path / "ds", tmp_path / "clean"
    first = subprocess.Popen([sys.executable, "-m", "pipelines.build_dataset", "--manifest", str(corpus),
                              "--output", str(out)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 280
    try:
        while not list(out.glob("*.tfrecord*")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == -9 and list(out.glob("*.tfrecord*")) and not (out / "dataset.json").exists()
    proc = build("--manifest", corpus, "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert build("--manifest", corpus, "--output", clean).returncode == 0
    assert tree(out) == tree(clean)
    for shard in sorted(clean.glob("*.tfrecord*")):
        assert (out / shard.name).read_bytes() == shard.read_bytes()
