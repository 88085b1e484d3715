"""The Beam composites one by one, with TestPipeline and assert_that."""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import schema, shards, transforms
import dataclasses

from pipelines.config import BuildConfig
from pipelines.decode import write_wav
from pipelines.manifest import ManifestRecord
from tests.conftest import utterance


def test_read_manifest_validates_and_dedupes(tmp_path):
    (tmp_path / "m.jsonl").write_text("\n".join([
        json.dumps({"id": "a", "path": "x/a.wav", "speaker": "t:1"}),
        "",
        "[1, 2]",
        json.dumps({"id": "b", "path": "b.wav"}),
        json.dumps({"id": "a", "path": "x/other.wav", "speaker": "t:1"}),
        json.dumps({"id": "c", "path": "/abs/c.wav", "speaker": "t:2", "duration_s": "oops"}),
    ]) + "\n")
    with TestPipeline() as p:
        out = p | transforms.ReadManifest(str(tmp_path / "m.jsonl"))
        assert_that(out["records"] | beam.Map(lambda r: (r.id, r.path, r.line, r.recording)),
                    equal_to([("a", str(tmp_path / "x" / "a.wav"), 1, "a")]), label="CheckRecords")
        assert_that(out[transforms.REJECTED] | beam.Map(lambda r: (r.id, r.reason)),
                    equal_to([("line-3", "invalid_json"), ("line-4", "missing_field"), ("a", "duplicate_id"),
                              ("line-6", "invalid_field")]), label="CheckRejected")


def test_analyze_then_cut_segments(tmp_path):
    wav = tmp_path / "r.wav"
    write_wav(wav, utterance(150, (2.0, 1.0, 1.5), seed=3))
    rec = ManifestRecord(id="t-1", path=str(wav), speaker="t:1", speaker_name="T", source="t")
    config = BuildConfig(manifest="m.jsonl", segment_seconds=0.5)
    analyze = transforms.AnalyzeAudioFn(config, str(tmp_path / "tmp"))
    analyze.setup()
    analyzed = next(analyze.process(rec))
    assert abs(analyzed.analysis.speech_s - 3.7) < 0.03 and analyzed.analysis.pauses_removed == 1
    fn = transforms.CutSegmentsFn(config)
    fn.setup()
    segs = list(fn.process(transforms.PlannedRecording(analyzed, "train", 5, 2.5)))
    assert [s["id"] for s in segs] == [f"t-1-{ms:09d}" for ms in (0, 500, 1000, 1500, 2000)]
    # pause 2.0-3.0 s in the source: speech 0-2.1 s is source 0-2.1, speech 2.1 s is source 2.9 s
    assert segs[3]["source_start_s"] == 1.5 and segs[4]["source_start_s"] == 2.0
    fn = transforms.CutSegmentsFn(dataclasses.replace(config, segment_seconds=0.3))
    fn.setup()
    late = list(fn.process(transforms.PlannedRecording(analyzed, "train", 8, 2.4)))[7]
    assert late["start_s"] == 2.1 and abs(late["source_start_s"] - 2.9) < 0.011
    with open(analyzed.speech_path, "rb") as f:
        speech = np.frombuffer(f.read(), "<i2")
    np.testing.assert_array_equal(segs[2]["pcm"], speech[16000:24000])


def test_write_shards_is_deterministic_and_complete(tmp_path):
    items = [("train" if i % 4 else "test", (i * 7919) % 1000, f"id{i}\tspk\trec{i % 3}\trec{i % 3}\t100".encode(),
              f"example-{i}".encode()) for i in range(40)]
    counts = {"train": 3, "validation": 0, "test": 1}

    def run(out):
        with TestPipeline() as p:
            examples = p | "Examples" >> beam.Create(items)
            counts_pc = p | "Counts" >> beam.Create([counts])
            stats = (examples, counts_pc) | transforms.WriteShards(
                BuildConfig(manifest="m.jsonl"), str(out), str(out / ".tmp"))
            assert_that(stats | beam.Map(lambda s: (s["file"], s["examples"] > 0)),
                        equal_to([("train-00000-of-00003.tfrecord", True), ("train-00001-of-00003.tfrecord", True),
                                  ("train-00002-of-00003.tfrecord", True), ("test-00000-of-00001.tfrecord", True)]))
        return {p.name: p.read_bytes() for p in sorted(out.glob("*.tfrecord"))}

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second
    got = []
    for name in first:
        with open(tmp_path / "a" / name, "rb") as f:
            got += list(shards.iter_tfrecords(f))
    assert sorted(got) == sorted(x[3] for x in items)


def test_tfrecord_framing_is_what_tensorflow_reads(tmp_path):
    import tensorflow as tf

    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(shards.tfrecord_frame(r) for r in (b"", b"abc", bytes(range(256)) * 40)))
    assert list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()) == [b"", b"abc", bytes(range(256)) * 40]


def test_shard_counts_from_target_size():
    assert shards.shard_counts({"train": 1000, "validation": 10, "test": 0}, 100_000, None, 32 * 2 ** 20) == \
        {"train": 3, "validation": 1, "test": 0}
    assert shards.shard_counts({"train": 5, "validation": 1, "test": 0}, 10, 4, 1) == \
        {"train": 4, "validation": 4, "test": 0}


def test_schema_shapes_match_computed_features():
    from pipelines.features import BatchFeaturizer

    cfg = schema.FeatureConfig(segment_samples=16000)
    out = BatchFeaturizer(cfg, schema.FEATURES)(np.zeros((2, 16000), np.int16))
    for name, shape in cfg.shapes().items():
        if name != schema.AUDIO:
            assert out[name].shape == (2, *shape)
