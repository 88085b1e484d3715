"""TensorBoard output of the evaluation (trainer.summaries) and the training progress callback (trainer.progress)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

from trainer import summaries


def read_events(folder):
    """{tag: (plugin name, value)} of every summary in the event files of `folder` (read back with TensorFlow)."""
    import tensorflow as tf

    out = {}
    for path in sorted(tf.io.gfile.glob(f"{folder}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                out[v.tag] = (v.metadata.plugin_data.plugin_name, tf.make_ndarray(v.tensor))
    return out


def projector_rows(folder):
    with open(f"{folder}/metadata.tsv", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def projector_points(folder):
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(folder))
    return tf.train.load_checkpoint(path).get_tensor(summaries.TENSOR_NAME)


def png(width=8, height=6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_scalars_image_and_a_capped_projector(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    speakers = [f"librivox:{i % 3}" if i % 2 else f"youtube:UC\tx{i % 3}" for i in range(n)]
    recordings = [f"rec-{i // 5}" for i in range(n)]
    metrics = {"accuracy": 0.75, "eer": 0.125, "num_examples": n, "per_speaker": {"a": 1}, "nan": float("nan"),
               "flag": True}
    folder = summaries.write_test_summaries(str(tmp_path / "job"), "test", metrics, png(), "confusion", emb,
                                            speakers, recordings, max_points=25)
    assert folder == str(tmp_path / "job" / "logs" / "test")
    events = read_events(folder)
    assert set(events) == {"test/accuracy", "test/eer", "test/num_examples", "test/confusion"}
    assert events["test/accuracy"][0] == "scalars" and float(events["test/accuracy"][1]) == 0.75
    assert float(events["test/eer"][1]) == 0.125
    plugin, image = events["test/confusion"]
    assert plugin == "images" and image[2][:4] == b"\x89PNG"
    rows = projector_rows(folder)
    assert rows[0] == ["speaker", "split", "source", "recording"] and len(rows) == 26
    assert all(len(r) == 4 and r[1] == "test" for r in rows[1:])
    assert rows[1] == ["youtube:UC x0", "test", "youtube", "rec-0"]  # the tab inside a name does not shift columns
    points = projector_points(folder)
    assert points.shape == (25, 4)
    np.testing.assert_array_equal(points[0], emb[0])
    np.testing.assert_array_equal(points[-1], emb[-1])
    config = (tmp_path / "job" / "logs" / "test" / "projector_config.pbtxt").read_text()
    assert summaries.TENSOR_NAME in config and "metadata.tsv" in config
    assert summaries.tensorboard_command("runs/r1") == "tensorboard --logdir runs/r1/logs"


def test_even_sample_is_deterministic_and_bounded():
    assert list(summaries.even_sample(4, 10)) == [0, 1, 2, 3]
    picked = summaries.even_sample(10_000, 5000)
    assert len(picked) == 5000 and picked[0] == 0 and picked[-1] == 9999
    assert list(picked) == list(summaries.even_sample(10_000, 5000))


def tiny_fit(callback, epochs=3, steps=4):
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    net = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    net.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    net.fit(ds, validation_data=val, epochs=epochs, steps_per_epoch=steps, callbacks=[callback], verbose=0)


def test_training_progress_one_line_per_epoch_off_a_terminal():
    from trainer.progress import TrainingProgress

    lines = []
    tiny_fit(TrainingProgress.make(3, 4, interactive=False, emit=lines.append))
    assert len(lines) == 3
    for k, line in enumerate(lines, 1):
        assert re.match(rf"train: {k}/3 epochs \(\d+%\), \d:\d\d:\d\d elapsed, ETA \d:\d\d:\d\d \| epoch {k}/3: "
                        r"[\d.]+ s, loss [\d.]+, accuracy [\d.]+, val_loss [\d.]+, val_accuracy [\d.]+$", line), line


def test_training_progress_draws_a_bar_on_a_terminal():
    from trainer.progress import TrainingProgress

    stream, lines = io.StringIO(), []
    tiny_fit(TrainingProgress.make(3, 4, interactive=True, emit=lines.append, stream=stream))
    out = stream.getvalue()
    assert lines == [] and "12/12" in out and "steps" in out and "epoch 3/3" in out


@pytest.mark.slow
def test_closed_set_training_writes_the_test_split_to_tensorboard(trained, capsys):
    job, metrics = trained
    folder = job / "logs" / "test"
    events = read_events(str(folder))
    t = metrics["test"]
    for key in ("accuracy", "macro_f1", "eer"):
        assert float(events[f"test/{key}"][1]) == pytest.approx(t[key], rel=1e-6)
    plugin, image = events["test/confusion"]
    assert plugin == "images" and image[2][:4] == b"\x89PNG"
    rows = projector_rows(folder)
    assert len(rows) == 1 + min(t["num_examples"], summaries.MAX_PROJECTOR_POINTS)
    assert {r[0] for r in rows[1:]} == {"test:s0", "test:s1", "test:s2"} and {r[2] for r in rows[1:]} == {"test"}
    assert projector_points(folder).shape == (len(rows) - 1, 16)  # TINY_MODEL's --embedding-dim
    assert (job / "logs" / "train").is_dir()  # Keras' own runs beside it


@pytest.mark.slow
def test_the_trainer_prints_the_tensorboard_command(tiny_dataset, tmp_path, monkeypatch, capsys):
    from trainer import task

    job = tmp_path / "job"
    fake = {"test": {"accuracy": 1.0, "macro_f1": 1.0, "eer": 0.0, "num_examples": 3, "num_speakers": 3},
            "export_dir": str(job / "export")}
    monkeypatch.setattr(task, "train_and_evaluate", lambda args: fake)
    assert task.main(["--data-dir", str(tiny_dataset), "--job-dir", str(job)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"tensorboard --logdir {job}/logs")
