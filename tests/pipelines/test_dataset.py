"""pipelines.dataset.load (decoded features, labels from speakers.tsv, TFDS-like slices) and the TFDS metadata
that lets tfds.builder_from_directory read the same shards."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from pipelines import schema
from pipelines.dataset import load, parse_split, read_speakers
from pipelines.dataset_meta import DatasetMeta
from pipelines.tfds_info import tfds_files
from tests.conftest import build

pytestmark = pytest.mark.slow  # builds datasets


@pytest.fixture(scope="module")
def sharded(small_corpus, tmp_path_factory):
    """The small corpus in 3 shards per split (30 train, 15 validation, 15 test examples)."""
    out = tmp_path_factory.mktemp("sharded") / "out"
    build(small_corpus, out, "--num-shards", "3")
    return out


def raw_examples(out, split):
    """{id: {key: raw bytes or value}} read straight from the shards with the plain TFRecord reader."""
    import tensorflow as tf

    meta = DatasetMeta.read(str(out))
    rows = {}
    for path in meta.files(str(out), split):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            ex = tf.train.Example.FromString(record).features.feature
            rows[ex["id"].bytes_list.value[0].decode()] = ex
    return rows


def tsv_labels(out):
    """speaker -> label, parsed here independently of pipelines.dataset."""
    lines = (out / "speakers.tsv").read_text().splitlines()
    return {c[0]: int(c[2]) for c in (ln.split("\t") for ln in lines[1:])}


def ids(ds):
    return [ex["id"].decode() for ex in ds.as_numpy_iterator()]


def test_decoded_features_equal_the_stored_bytes_and_labels_follow_speakers_tsv(sharded):
    meta = DatasetMeta.read(str(sharded))
    labels = tsv_labels(sharded)
    assert sorted(labels.values()) == [0, 1, 2]
    raw = raw_examples(sharded, "train")
    seen = 0
    for ex in load(str(sharded), "train").as_numpy_iterator():
        stored = raw[ex["id"].decode()]
        pcm = np.frombuffer(stored["audio"].bytes_list.value[0], "<i2")
        assert ex["audio"].dtype == np.float32 and ex["audio"].shape == (16000,)
        np.testing.assert_array_equal(ex["audio"], pcm.astype(np.float32) / 32768.0)
        for name in ("fft", "log_mel"):
            expected = np.frombuffer(stored[name].bytes_list.value[0], "<f4").reshape(meta.feature_shapes()[name])
            np.testing.assert_array_equal(ex[name], expected)
        assert ex["label"] == labels[ex["speaker"].decode()]
        assert ex["speaker_name"].decode().startswith("Speaker ")
        seen += 1
    assert seen == meta.examples("train") == 30


def test_as_supervised_gives_feature_label_pairs_in_the_same_order(sharded):
    full = list(load(str(sharded), "validation").as_numpy_iterator())
    pairs = list(load(str(sharded), "validation", features="log_mel", as_supervised=True).as_numpy_iterator())
    assert len(pairs) == len(full) == 15
    for (x, y), ex in zip(pairs, full):
        assert x.shape == (98, 64)
        np.testing.assert_array_equal(x, ex["log_mel"])
        assert y == ex["label"]
    two = next(iter(load(str(sharded), "test", features=["audio", "fft"], as_supervised=True)))
    assert set(two[0]) == {"audio", "fft"}
    only = next(iter(load(str(sharded), "test", features="fft")))
    assert "fft" in only and "audio" not in only and "log_mel" not in only


def test_slices_are_example_ranges_in_shard_order(sharded):
    out = str(sharded)
    whole = ids(load(out, "train"))
    assert len(whole) == 30 and DatasetMeta.read(out).split("train").shard_examples not in ((), (30,))
    head, tail = ids(load(out, "train[:10%]")), ids(load(out, "train[10%:]"))
    assert len(head) == 3 and len(tail) == 27 and head + tail == whole
    assert ids(load(out, "train[:7]")) == whole[:7]
    assert ids(load(out, "train[-5:]")) == whole[-5:]
    assert ids(load(out, "train[9:21]")) == whole[9:21]  # spans all three shards
    assert ids(load(out, "train[:0]")) == []
    validation, test = load(out, ["validation[:50%]", "test"])
    assert len(ids(validation)) == 8 and len(ids(test)) == 15  # round(7.5) = 8, as TFDS rounds
    again = ids(load(out, "train", shuffle_files=True, seed=3))
    assert sorted(again) == sorted(whole)


def test_slices_without_per_shard_counts_give_the_same_examples(sharded, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(sharded, old)
    data = json.loads((old / "dataset.json").read_text())
    for split in data["splits"].values():
        del split["shard_examples"]
    (old / "dataset.json").write_text(json.dumps(data))
    assert DatasetMeta.read(str(old)).split("train").shard_examples == ()
    assert ids(load(str(old), "train[9:21]")) == ids(load(str(sharded), "train[9:21]"))


def test_remote_paths_through_tf_io_gfile(sharded):
    import tensorflow as tf

    remote = "ram://loader-test/ds"
    for path in sharded.iterdir():
        if path.is_file():
            tf.io.gfile.copy(str(path), f"{remote}/{path.name}", overwrite=True)
    assert ids(load(remote, "test[:4]")) == ids(load(str(sharded), "test"))[:4]
    labels = [int(ex["label"]) for ex in load(remote, "test").as_numpy_iterator()]
    assert labels == [int(ex["label"]) for ex in load(str(sharded), "test").as_numpy_iterator()]


def test_bad_split_feature_or_folder_is_one_line_naming_the_choices(sharded, tmp_path):
    out = str(sharded)
    for split in ("tran", "train[:x]", "train[:150%]", "train[1:2:3]", None):
        with pytest.raises(ValueError) as exc:
            load(out, split)
        assert "\n" not in str(exc.value)
        assert "train, validation, test" in str(exc.value) or "100%" in str(exc.value)
    with pytest.raises(ValueError, match=r"'spectrogram'.*choose from audio, fft, log_mel"):
        load(out, "train", features="spectrogram")
    with pytest.raises(ValueError, match="holds no dataset.json"):
        load(str(tmp_path), "train")


def test_open_set_speakers_absent_from_train_get_minus_one(small_corpus, tmp_path):
    out = tmp_path / "open"
    build(small_corpus, out, "--split-by", "speaker", "--split-fractions", "0.34,0.33,0.33")
    rows = read_speakers(str(out))
    assert sorted(r.label for r in rows) == [-1, -1, 0]
    train_speaker = next(r.speaker for r in rows if r.label == 0)
    for split in schema.SPLITS:
        got = {(ex["speaker"].decode(), int(ex["label"])) for ex in load(str(out), split).as_numpy_iterator()}
        assert got and all(label == (0 if speaker == train_speaker else -1) for speaker, label in got)


def test_tfds_builder_from_directory_reads_the_shards_as_load_does(sharded):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder_from_directory(str(sharded))
    assert {s: builder.info.splits[s].num_examples for s in schema.SPLITS} == {"train": 30, "validation": 15,
                                                                               "test": 15}
    for split in ("train", "train[:10%]", "test[5:12]"):
        ours = list(load(str(sharded), split).as_numpy_iterator())
        theirs = list(builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator())
        assert [t["id"] for t in theirs] == [o["id"] for o in ours]
        for t, o in zip(theirs, ours):
            assert t["audio"].dtype == np.int16  # TFDS keeps the stored int16
            np.testing.assert_array_equal(t["audio"].astype(np.float32) / 32768.0, o["audio"])
            np.testing.assert_array_equal(t["log_mel"], o["log_mel"])
            assert t["speaker"] == o["speaker"] and t["start_s"] == o["start_s"]


def test_tfds_metadata_is_owned_and_left_out_for_gzipped_shards(small_corpus, sharded):
    from pipelines.output_dir import owned

    meta = DatasetMeta.read(str(sharded))
    for name in (schema.TFDS_INFO_JSON, schema.TFDS_FEATURES_JSON, schema.RECORDINGS_JSONL):
        assert (sharded / name).is_file() and owned(name, meta.config)
    assert tfds_files(dataclasses.replace(meta, config=dataclasses.replace(meta.config, gzip=True))) == {}
    info = json.loads((sharded / schema.TFDS_INFO_JSON).read_text())
    lengths = {s["name"]: [int(n) for n in s["shardLengths"]] for s in info["splits"]}
    assert lengths == {s: list(meta.split(s).shard_examples) for s in schema.SPLITS}


def test_parse_split_bounds():
    meta = DatasetMeta.from_json({"config": {"manifest": "m"}, "feature_config": {"segment_samples": 16000},
                                  "splits": {"train": {"examples": 200}}})
    assert parse_split("train[:10%]", meta) == parse_split("train[0:20]", meta)
    assert (parse_split("train[-25%:]", meta).start, parse_split("train[-25%:]", meta).stop) == (150, 200)
    assert (parse_split("train[150:100]", meta).start, parse_split("train[150:100]", meta).stop) == (150, 150)
    assert parse_split("test", meta).stop == 0


def test_tfds_metadata_leaves_out_empty_splits(sharded):
    meta = DatasetMeta.read(str(sharded))
    empty = dataclasses.replace(meta, splits={**meta.splits, "test": dataclasses.replace(
        meta.split("test"), examples=0, files=("test-00000-of-00001.tfrecord",), shard_examples=(0,))})
    info = json.loads(tfds_files(empty)[schema.TFDS_INFO_JSON])
    assert [s["name"] for s in info["splits"]] == ["train", "validation"]
