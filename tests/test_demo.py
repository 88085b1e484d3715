"""The README's demo command, on a smaller corpus."""
from __future__ import annotations

import json

from pipelines import demo
from tests.conftest import read_split


def test_demo_builds_a_dataset_and_says_where(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--speakers", "5", "--recordings", "3", "--seconds", "6"]) == 0
    printed = capsys.readouterr().out
    assert f"Dataset: {out / 'dataset'}" in printed and "holds" in printed
    meta = json.loads((out / "dataset" / "dataset.json").read_text())
    assert meta["num_speakers"] == 5 and meta["counts"]["add_up"] and meta["counts"]["rejected"] == 0
    train = read_split(out / "dataset", "train")
    assert {r["speaker"] for r in train} == {f"demo:s{i:02d}" for i in range(1, 6)}
    # a second run reuses the corpus and rebuilds the same dataset in place
    before = {p.name: p.read_bytes() for p in (out / "dataset").glob("*.tfrecord")}
    corpus_mtime = (out / "corpus" / "manifest.jsonl").stat().st_mtime_ns
    assert demo.main(["--out", str(out), "--speakers", "5", "--recordings", "3", "--seconds", "6"]) == 0
    assert (out / "corpus" / "manifest.jsonl").stat().st_mtime_ns == corpus_mtime
    assert {p.name: p.read_bytes() for p in (out / "dataset").glob("*.tfrecord")} == before
