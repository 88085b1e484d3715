"""The README's demo command, on a smaller corpus."""
from __future__ import annotations

import json

from demos import end_to_end as demo
from pipelines.dataset_meta import DatasetMeta
from tests.conftest import read_split
import pytest

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow

SMALL = ["--speakers", "5", "--recordings", "3", "--seconds", "6"]


def test_demo_builds_a_dataset_and_says_where(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), *SMALL, "--no-train"]) == 0
    printed = capsys.readouterr().out
    assert f"Dataset: {out / 'dataset'}" in printed and "holds" in printed
    meta = DatasetMeta.read(str(out / "dataset"))
    assert meta.num_speakers == 5 and meta.counts.add_up and meta.counts.rejected == 0
    train = read_split(out / "dataset", "train")
    assert {r["speaker"] for r in train} == {f"demo:s{i:02d}" for i in range(1, 6)}
    # a second run reuses the corpus and rebuilds the same dataset in place
    before = {p.name: p.read_bytes() for p in (out / "dataset").glob("*.tfrecord")}
    corpus_mtime = (out / "corpus" / "manifest.jsonl").stat().st_mtime_ns
    assert demo.main(["--out", str(out), *SMALL, "--no-train"]) == 0
    assert (out / "corpus" / "manifest.jsonl").stat().st_mtime_ns == corpus_mtime
    assert {p.name: p.read_bytes() for p in (out / "dataset").glob("*.tfrecord")} == before


def test_demo_trains_and_names_held_out_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--speakers", "3", "--recordings", "3", "--seconds", "6",
                      "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    heldout = sorted((out / "heldout").rglob("demo-s*-r04.*"))
    assert len(heldout) == 3  # one new take per speaker, never in the manifest
    manifest_ids = {json.loads(x)["id"] for x in (out / "corpus" / "manifest.jsonl").read_text().splitlines()}
    assert not any(p.stem in manifest_ids for p in heldout)
    for p in heldout:
        assert str(p.relative_to(out)) in printed
    assert "held-out files named correctly:" in printed
    metrics = json.loads((out / "job" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1 and (out / "job" / "export" / "saved_model.pb").exists()
    # two voices the dataset never heard: enrolled from one recording each, verified with another
    gallery = json.loads((out / "gallery.json").read_text())
    assert sorted(gallery["speakers"]) == ["s04", "s05"] and all(s["count"] == 1 for s in gallery["speakers"].values())
    decisions = [ln for ln in printed.splitlines() if " as s0" in ln]
    assert len(decisions) == 4 and all(("same speaker" in ln) or ("different speakers" in ln) for ln in decisions)
