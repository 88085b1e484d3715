"""The trainer end to end on a tiny generated dataset: training, resume, evaluation, export, TFLite, predict."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines.decode import write_wav
from tests.conftest import TINY_MODEL, read_split, utterance

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow

def test_training_smoke_loss_falls_and_metrics_are_written(trained):
    job, metrics = trained
    with open(job / "history.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 4 and losses[-1] < losses[0]
    saved = json.loads((job / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "eer"):
        assert 0.0 <= saved["test"][key] <= 1.0
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert (job / "report.md").exists() and (job / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert list((job / "logs").rglob("events.out.tfevents.*"))
    assert not (job / "backup").exists()  # removed once training completed


def test_export_takes_raw_audio_after_the_dataset_is_deleted(trained, tiny_dataset):
    from trainer import export

    job, _ = trained
    model, info = export.load(str(job / "export"))
    assert info.speakers and info.segment_samples == 16000
    rows = read_split(tiny_dataset, "test")[:8]
    waves = np.stack([r["audio"] for r in rows]).astype(np.float32)
    out = model.signatures["serving_default"](waveform=waves)
    probs = out["probabilities"].numpy()
    assert probs.shape == (8, len(info.speakers)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert out["embedding"].shape == (8, 16)
    np.testing.assert_allclose(np.linalg.norm(out["embedding"].numpy(), axis=1), 1.0, atol=1e-5)
    names = [s.decode() for s in out["speaker"].numpy()]
    assert names == [info.speakers[i] for i in out["speaker_index"].numpy()]
    # the export's features equal the stored ones
    feats = model.signatures["features"](waveform=waves)["log_mel"].numpy()
    stored = np.stack([r["log_mel"] for r in rows])
    assert np.abs(feats - stored).max() < 1e-4


def test_tflite_model_loads_and_agrees(trained, tiny_dataset):
    import tensorflow as tf

    from trainer import export

    job, _ = trained
    model, _ = export.load(str(job / "export"))
    interpreter = tf.lite.Interpreter(model_path=str(job / "export" / "model.tflite"))
    runner = interpreter.get_signature_runner("numeric")
    rows = read_split(tiny_dataset, "validation")[:4]
    for r in rows:
        wave = r["audio"][None, :].astype(np.float32)
        lite = runner(waveform=wave)
        full = model.signatures["numeric"](waveform=wave)
        assert np.abs(lite["probabilities"] - full["probabilities"].numpy()).max() < 1e-4


def test_predict_cli_reports_every_file_and_one_line_per_bad_file(trained, tmp_path):
    job, _ = trained
    good = tmp_path / "voice.wav"
    write_wav(good, utterance(155, (1.5, 0.9, 1.4), seed=77))
    short = tmp_path / "short.flac"
    from pipelines.decode_ffmpeg import find_ffmpeg

    wav = tmp_path / "short.wav"
    write_wav(wav, utterance(200, (0.4,), seed=78))
    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-i", str(wav), "-ar", "44100", str(short)], check=True)
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    proc = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(job / "export"), "--json",
                           "--min-speech-seconds", "0.2", str(good), str(bad), str(short)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in results] == [str(good), str(short)]
    from trainer.export import MODEL_JSON, ModelInfo

    info = ModelInfo.from_json(json.loads((job / "export" / MODEL_JSON).read_text()))
    for r in results:
        assert r["speaker"] in info.speakers and 0 < r["confidence"] <= 1
        assert r["speaker_name"] == info.name_of(r["speaker"])
    assert results[1]["segments"] == 1  # shorter than a segment: one padded segment
    errors = [line for line in proc.stderr.splitlines() if line.startswith("trainer.predict:")]
    assert len(errors) == 1 and "bad.mp3" in errors[0] and "undecodable" in errors[0]
    table = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(job / "export"), str(good),
                            "--segments"], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and str(good) in table.stdout and "confidence" in table.stdout


def test_interrupted_training_resumes_from_the_last_epoch(tiny_dataset, tmp_path):
    import tf_keras as keras

    from trainer import task

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated interruption")

    job = tmp_path / "job"
    argv = ["--data-dir", str(tiny_dataset), "--job-dir", str(job), "--epochs", "4", "--steps-per-epoch", "3",
            "--no-tflite", *TINY_MODEL]
    with pytest.raises(KeyboardInterrupt):
        task.train_and_evaluate(task.get_args(argv), extra_callbacks=[Interrupt()])
    assert (job / "backup").exists() and not (job / "export").exists()

    class Epochs(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            Epochs.seen.append(epoch)

    task.train_and_evaluate(task.get_args(argv), extra_callbacks=[Epochs()])
    assert Epochs.seen == [2, 3]  # epochs 0 and 1 were done before the interruption
    with open(job / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3]


def _run_task(*argv):
    return subprocess.run([sys.executable, "-m", "trainer.task", *argv], capture_output=True, text=True, timeout=300)


def test_bad_inputs_fail_before_training(tiny_dataset, tmp_path):
    proc = _run_task("--data-dir", str(tmp_path / "none"), "--job-dir", str(tmp_path / "j"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr.splitlines()[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run_task("--data-dir", str(empty), "--job-dir", str(tmp_path / "j"))
    assert proc.returncode == 2 and "dataset.json" in proc.stderr.splitlines()[-1]
    no_transform = tmp_path / "no_transform"
    shutil.copytree(tiny_dataset, no_transform, ignore=shutil.ignore_patterns("transform"))
    proc = _run_task("--data-dir", str(no_transform), "--job-dir", str(tmp_path / "j"))
    assert proc.returncode == 2 and "python -m pipelines.preprocess" in proc.stderr.splitlines()[-1]
    audio_only = tmp_path / "audio_only"
    shutil.copytree(tiny_dataset, audio_only)
    meta = json.loads((audio_only / "dataset.json").read_text())
    meta["features"] = ["audio", "fft"]
    (audio_only / "dataset.json").write_text(json.dumps(meta))
    proc = _run_task("--data-dir", str(audio_only), "--job-dir", str(tmp_path / "j"), "--model", "spectrogram_cnn")
    assert proc.returncode == 2 and "needs the 'log_mel' feature" in proc.stderr.splitlines()[-1]
    stale = tmp_path / "stale"
    shutil.copytree(tiny_dataset, stale)
    meta = json.loads((stale / "dataset.json").read_text())
    meta["feature_config"]["num_mel_bins"] = 40  # as if rebuilt with other settings after preprocess
    (stale / "dataset.json").write_text(json.dumps(meta))
    proc = _run_task("--data-dir", str(stale), "--job-dir", str(tmp_path / "j"))
    assert proc.returncode == 2 and "rerun python -m pipelines.preprocess" in proc.stderr.splitlines()[-1]
    existing = tmp_path / "j2" / "export"
    existing.mkdir(parents=True)
    (existing / "saved_model.pb").write_bytes(b"x")
    proc = _run_task("--data-dir", str(tiny_dataset), "--job-dir", str(tmp_path / "j2"))
    assert proc.returncode == 2 and "already exists" in proc.stderr.splitlines()[-1]
    for p in (proc,):
        assert "Traceback" not in p.stderr


def test_vertex_ai_model_dir_and_default_strategy(tiny_dataset, tmp_path, monkeypatch):
    import tensorflow as tf

    from trainer import task

    monkeypatch.setenv("AIP_MODEL_DIR", str(tmp_path / "vertex-model"))
    args = task.get_args(["--data-dir", str(tiny_dataset), "--job-dir", str(tmp_path / "job")])
    assert args.export_dir == str(tmp_path / "vertex-model")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}))
    assert task.strategy_from_environment() is tf.distribute.get_strategy()


def test_fft_conv1d_trains_on_the_fft_feature_and_exports(tiny_dataset, tmp_path):
    """The Keras example's architecture (narrowed) end to end: its export computes |FFT| from raw audio."""
    from trainer import export, task

    job = tmp_path / "job"
    args = task.get_args(["--data-dir", str(tiny_dataset), "--job-dir", str(job), "--model", "fft_conv1d",
                          "--epochs", "2", "--steps-per-epoch", "3", "--width", "0.125", "--embedding-dim", "8",
                          "--batch-size", "8", "--no-tflite"])
    metrics = task.train_and_evaluate(args)
    assert metrics["training"]["feature"] == "fft" and 0 <= metrics["test"]["accuracy"] <= 1
    model, info = export.load(str(job / "export"))
    assert info.feature == "fft"
    rows = read_split(tiny_dataset, "test")[:3]
    waves = np.stack([r["audio"] for r in rows]).astype(np.float32)
    feats = model.signatures["features"](waveform=waves)["fft"].numpy()
    assert np.abs(feats - np.stack([r["fft"] for r in rows])).max() < 1e-2 * np.abs(feats).max()
    assert model.signatures["serving_default"](waveform=waves)["probabilities"].shape == (3, len(info.speakers))
