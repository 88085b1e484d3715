"""pipelines.preprocess: tf.Transform statistics and vocabulary from the train split only, applied at serving."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines import preprocess, schema, transform_output
from tests.conftest import build, make_corpus, read_split

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow


def _uneven_corpus(root):
    """3 speakers with 5, 2 and 4 recordings: train counts 12, 8, 8, so the vocabulary is neither alphabetical
    nor arbitrary (s0 most frequent, then the s1/s2 tie broken in reverse byte order: s2, s1)."""
    manifest = make_corpus(root, speakers=3, recordings=5, pattern=(1.6, 0.8, 1.3, 0.3, 1.2))
    keep = {"test:s0": 5, "test:s1": 2, "test:s2": 4}
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    lines = [x for x in lines if int(x["id"].rsplit("-r", 1)[1]) < keep[x["speaker"]]]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest


@pytest.fixture(scope="module")
def fft_logmel(tmp_path_factory):
    """audio,fft,log_mel (the builder's defaults), 1 s segments, split by recording; preprocessed once."""
    root = tmp_path_factory.mktemp("pp_a")
    out = root / "ds"
    build(_uneven_corpus(root / "corpus"), out, "--features", "audio,fft,log_mel")
    info = preprocess.run(["--dataset", str(out)])
    return out, info


@pytest.fixture(scope="module")
def spectrogram(tmp_path_factory):
    """spectrogram only, 0.5 s segments, gzip, 2 shards per split, split by speaker (open set): the
    validation and test speakers are absent from train, so they must be absent from the vocabulary."""
    root = tmp_path_factory.mktemp("pp_b")
    out = root / "ds"
    manifest = make_corpus(root / "corpus", speakers=4, recordings=2, pattern=(1.6, 0.8, 1.3))
    build(manifest, out, "--features", "spectrogram", "--segment-seconds", "0.5", "--gzip", "--num-shards", "2",
          "--split-by", "speaker", "--split-fractions", "0.5,0.25,0.25")
    info = preprocess.run(["--dataset", str(out)])
    return out, info


def _per_bin_stats(rows, feature):
    x = np.stack([r[feature] for r in rows]).astype(np.float64)
    x = x.reshape(-1, x.shape[-1])  # [B, F] or [B*T, F]: batch (and time) pooled per frequency bin
    return x.mean(0), x.var(0)


def _tsv_label_order(out):
    rows = [ln.split("\t") for ln in (out / schema.SPEAKERS_TSV).read_text().splitlines()[1:]]
    labelled = sorted((int(r[2]), r[0]) for r in rows if int(r[2]) >= 0)
    assert [i for i, _ in labelled] == list(range(len(labelled)))
    return [k for _, k in labelled]


# ---------------------------------------------------------------------------------------------
# statistics: train split only
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture, feature", [("fft_logmel", "fft"), ("fft_logmel", "log_mel"),
                                              ("spectrogram", "spectrogram")])
def test_statistics_are_numpy_per_bin_stats_of_the_train_split_only(request, fixture, feature):
    out, _ = request.getfixturevalue(fixture)
    tft_output = transform_output.load_transform(str(out))
    mean, var = transform_output.normalization_statistics(tft_output, feature)
    train = read_split(out, "train")
    want_mean, want_var = _per_bin_stats(train, feature)
    assert mean.shape == want_mean.shape == (train[0][feature].shape[-1],)
    scale = np.abs(want_mean).max()
    np.testing.assert_allclose(mean, want_mean, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(var, want_var, rtol=1e-3, atol=1e-5 * want_var.max())
    # statistics over every split are measurably different: what was analyzed is train alone
    every = train + read_split(out, "validation") + read_split(out, "test")
    all_mean, all_var = _per_bin_stats(every, feature)
    assert np.abs(mean - all_mean).max() > 100 * np.abs(mean - want_mean).max() + 1e-3 * scale
    assert np.abs(var - all_var).max() > 100 * np.abs(var - want_var).max()


def test_transform_layer_normalizes_validation_without_speaker(fft_logmel):
    out, _ = fft_logmel
    layer = transform_output.load_transform(str(out)).transform_features_layer()
    train, val = read_split(out, "train"), read_split(out, "validation")
    assert val
    raw = {f: np.stack([r[f] for r in val]) for f in ("fft", "log_mel")}
    got = layer(raw)  # floats only: no speaker, as inside the exported model
    assert set(got) == {"fft", "log_mel"}  # label needs speaker: pruned, not an error
    for f in ("fft", "log_mel"):
        mean, var = _per_bin_stats(train, f)
        want = (raw[f] - mean) / np.sqrt(var + transform_output.EPSILON)
        assert got[f].dtype.name == "float32" and tuple(got[f].shape) == raw[f].shape
        np.testing.assert_allclose(got[f].numpy(), want, atol=1e-4, rtol=0)
    only_fft = layer({"fft": raw["fft"]})  # a trainer using one feature feeds only that one
    assert set(only_fft) == {"fft"}
    np.testing.assert_allclose(only_fft["fft"].numpy(), got["fft"].numpy(), atol=1e-6)


def test_spectrogram_is_normalized_per_bin_pooling_time(spectrogram):
    out, info = spectrogram
    assert info["normalized_features"] == ["spectrogram"] and info["feature_shapes"]["spectrogram"] == [48, 257]
    assert info["normalization"]["spectrogram"]["pooled_axes"] == ["batch", "time"]
    layer = transform_output.load_transform(str(out)).transform_features_layer()
    train, test = read_split(out, "train"), read_split(out, "test")
    x = np.stack([r["spectrogram"] for r in test])
    mean, var = _per_bin_stats(train, "spectrogram")
    got = layer({"spectrogram": x})
    assert set(got) == {"spectrogram"}
    # open-set test speakers have energy where the train speakers have almost none: |z| reaches the
    # hundreds there, where float32 itself resolves only ~6e-5, hence the float32-sized relative term
    np.testing.assert_allclose(got["spectrogram"].numpy(), (x - mean) / np.sqrt(var + transform_output.EPSILON),
                               atol=1e-4, rtol=1e-6)
    # a train batch comes out with zero mean and unit variance per bin (where the bin is not constant)
    z = layer({"spectrogram": np.stack([r["spectrogram"] for r in train])})["spectrogram"].numpy()
    z = z.reshape(-1, z.shape[-1])
    live = var > 1e-3
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(z.var(0)[live], 1, atol=1e-2)


# ---------------------------------------------------------------------------------------------
# labels and vocabulary
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["fft_logmel", "spectrogram"])
def test_vocabulary_is_the_train_speakers_in_speakers_tsv_label_order(request, fixture):
    out, info = request.getfixturevalue(fixture)
    tft_output = transform_output.load_transform(str(out))
    vocab = transform_output.speaker_vocabulary(tft_output)
    train_speakers = {r["speaker"] for r in read_split(out, "train")}
    assert vocab == _tsv_label_order(out)
    assert set(vocab) == train_speakers and len(vocab) == len(train_speakers)
    assert info["label"]["vocabulary_size"] == len(vocab)
    if fixture == "fft_logmel":
        assert vocab == ["test:s0", "test:s2", "test:s1"]  # 12 train segments, then a tie at 8
    else:
        others = {r["speaker"] for s in ("validation", "test") for r in read_split(out, s)}
        assert others and not others & set(vocab)  # open-set speakers never reach the vocabulary


def test_label_is_the_vocabulary_index_when_speaker_is_given(fft_logmel, spectrogram):
    for out, feature in ((fft_logmel[0], "fft"), (spectrogram[0], "spectrogram")):
        tft_output = transform_output.load_transform(str(out))
        vocab = transform_output.speaker_vocabulary(tft_output)
        rows = [r for s in schema.SPLITS for r in read_split(out, s)]
        got = tft_output.transform_features_layer()({
            feature: np.stack([r[feature] for r in rows]),
            schema.SPEAKER: np.array([r["speaker"] for r in rows], dtype=object)})
        want = [vocab.index(r["speaker"]) if r["speaker"] in vocab else -1 for r in rows]
        assert got["label"].dtype.name == "int64"
        assert got["label"].numpy().tolist() == want
        if feature == "spectrogram":
            assert -1 in want  # validation/test speakers of the open-set split are unknown


def test_exported_serving_model_needs_no_speaker_and_no_dataset(fft_logmel, tmp_path):
    """What the trainer does: the layer inside a SavedModel whose signature takes floats only."""
    import tensorflow as tf
    import tensorflow_transform as tft

    out, _ = fft_logmel
    copy = tmp_path / "transform"
    shutil.copytree(out / schema.TRANSFORM_DIR, copy)
    tft_output = tft.TFTransformOutput(str(copy))
    module = tf.Module()
    module.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None, 8000], tf.float32)])
    def serve(fft):
        return module.tft_layer({"fft": fft})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def label(speaker):
        return module.tft_layer({schema.SPEAKER: speaker})

    export = tmp_path / "export"
    tf.saved_model.save(module, str(export), signatures={"serving_default": serve, "label": label})
    shutil.rmtree(copy)  # the export must carry the statistics and the vocabulary itself
    loaded = tf.saved_model.load(str(export))
    train, val = read_split(out, "train"), read_split(out, "validation")
    x = np.stack([r["fft"] for r in val])
    got = loaded.signatures["serving_default"](fft=tf.constant(x))
    assert set(got) == {"fft"}
    mean, var = _per_bin_stats(train, "fft")
    np.testing.assert_allclose(got["fft"].numpy(), (x - mean) / np.sqrt(var + transform_output.EPSILON), atol=1e-4)
    labels = loaded.signatures["label"](speaker=tf.constant(["test:s1", "test:s0", "nobody"]))["label"]
    assert labels.numpy().tolist() == [2, 0, -1]


# ---------------------------------------------------------------------------------------------
# preprocess.json, reruns, staleness
# ---------------------------------------------------------------------------------------------
def test_preprocess_json_records_what_was_analyzed(fft_logmel):
    out, info = fft_logmel
    meta = json.loads((out / schema.DATASET_JSON).read_text())
    on_disk = json.loads((out / schema.TRANSFORM_DIR / transform_output.PREPROCESS_JSON).read_text())
    assert on_disk == info
    assert info["split"] == "train" and "train split only" in info["statistics_source"]
    assert info["train_examples"] == meta["splits"]["train"]["examples"] == len(read_split(out, "train"))
    assert info["train_files"] == meta["splits"]["train"]["files"]
    assert info["normalized_features"] == ["fft", "log_mel"]  # audio is never fed
    assert info["feature_shapes"] == {"fft": [8000], "log_mel": [98, 64]}
    assert info["normalization"]["fft"]["statistics_shape"] == [8000]
    assert info["normalization"]["log_mel"]["statistics_shape"] == [64]
    assert info["label"]["vocabulary_size"] == 3 and info["code_version"]
    tft_output = transform_output.load_transform(str(out))
    assert set(tft_output.raw_feature_spec()) == {"fft", "log_mel", schema.SPEAKER}
    assert set(tft_output.transformed_feature_spec()) == {"fft", "log_mel", "label"}
    assert not (out / preprocess.TEMP_NAME).exists() and not (out / schema.TRANSFORM_DIR / "transform_tmp").exists()


def test_rerun_overwrites_cleanly(fft_logmel):
    out, info = fft_logmel
    tdir = out / schema.TRANSFORM_DIR
    before = sorted(p.relative_to(tdir).as_posix() for p in tdir.rglob("*"))
    vocab = (tdir / "transform_fn" / "assets" / "speaker").read_text()
    (tdir / "transform_fn" / "stale.txt").write_text("from an earlier run")
    again = preprocess.run(["--dataset", str(out)])
    assert again == info
    assert sorted(p.relative_to(tdir).as_posix() for p in tdir.rglob("*")) == before
    assert (tdir / "transform_fn" / "assets" / "speaker").read_text() == vocab
    assert not (out / preprocess.TEMP_NAME).exists()
    assert transform_output.speaker_vocabulary(transform_output.load_transform(str(out))) == ["test:s0", "test:s2", "test:s1"]


def test_load_transform_refuses_a_stale_or_incomplete_output(fft_logmel, tmp_path):
    out, _ = fft_logmel
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    meta = json.loads((copy / schema.DATASET_JSON).read_text())
    meta["name"] = "rebuilt"
    (copy / schema.DATASET_JSON).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="different dataset.json"):
        transform_output.load_transform(str(copy))
    assert transform_output.load_transform(str(copy), check=False).vocabulary_size_by_name("speaker") == 3
    (copy / schema.TRANSFORM_DIR / transform_output.PREPROCESS_JSON).unlink()
    with pytest.raises(FileNotFoundError, match="pipelines.preprocess"):
        transform_output.load_transform(str(copy))


# ---------------------------------------------------------------------------------------------
# the per-example function and bad inputs
# ---------------------------------------------------------------------------------------------
def _example(**features):
    import tensorflow as tf

    feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_example_to_instance_parses_and_rejects_mismatched_shapes():
    x = np.arange(6, dtype="<f4")
    inst = preprocess.example_to_instance(_example(id=b"a-0", speaker=b"test:s0", log_mel=x.tobytes()),
                                          {"log_mel": (3, 2)})
    assert inst["speaker"] == b"test:s0" and inst["log_mel"].dtype == np.float32
    np.testing.assert_array_equal(inst["log_mel"], x.reshape(3, 2))
    with pytest.raises(ValueError, match="example a-0: feature log_mel"):
        preprocess.example_to_instance(_example(id=b"a-0", speaker=b"s", log_mel=x[:5].tobytes()),
                                       {"log_mel": (3, 2)})
    with pytest.raises(ValueError, match="no speaker"):
        preprocess.example_to_instance(_example(id=b"a-0", log_mel=x.tobytes()), {"log_mel": (3, 2)})


def _dataset_variant(src, dst, edit):
    """A dataset folder holding only an edited dataset.json: every check runs before any shard is read."""
    dst.mkdir(parents=True)
    meta = json.loads((src / schema.DATASET_JSON).read_text())
    edit(meta)
    (dst / schema.DATASET_JSON).write_text(json.dumps(meta))
    return dst


def _no_train(meta):
    meta["splits"]["train"].update(examples=0, files=[])


def _audio_only(meta):
    meta["features"] = meta["config"]["features"] = ["audio"]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("no_json", "no dataset.json"),
    ("no_train", "the train split has no examples"),
    ("audio_only", "no float feature to normalize"),
    ("beam_flag", "unrecognized arguments: --no_such_flag 1"),
    ("foreign", "not a tf.Transform output"),
])
def test_bad_inputs_fail_before_any_work_with_one_line(fft_logmel, tmp_path, capsys, case, message):
    src, _ = fft_logmel
    extra = []
    if case == "missing":
        ds = tmp_path / "nope"
    elif case == "no_json":
        ds = tmp_path / "empty"
        ds.mkdir()
    elif case in ("no_train", "audio_only"):
        ds = _dataset_variant(src, tmp_path / "ds", _no_train if case == "no_train" else _audio_only)
    elif case == "beam_flag":
        ds = _dataset_variant(src, tmp_path / "ds", lambda m: None)
        extra = ["--no_such_flag", "1"]
    else:
        ds = _dataset_variant(src, tmp_path / "ds", lambda m: None)
        (ds / schema.TRANSFORM_DIR).mkdir()
        (ds / schema.TRANSFORM_DIR / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exc:
        preprocess.main(["--dataset", str(ds), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("python -m pipelines.preprocess: error:")
    if ds.exists():
        names = {p.name for p in ds.iterdir()}
        assert preprocess.TEMP_NAME not in names
        assert case == "foreign" or schema.TRANSFORM_DIR not in names
    if case == "foreign":
        assert [p.name for p in (ds / schema.TRANSFORM_DIR).iterdir()] == ["notes.txt"]


def test_cli_audio_only_dataset_exits_2_with_one_line(fft_logmel, tmp_path):
    src, _ = fft_logmel
    ds = _dataset_variant(src, tmp_path / "ds", _audio_only)
    proc = subprocess.run([sys.executable, "-m", "pipelines.preprocess", "--dataset", str(ds)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no float feature to normalize" in proc.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in ds.iterdir()) == [schema.DATASET_JSON]
