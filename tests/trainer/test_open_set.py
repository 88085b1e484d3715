"""Open set end to end on a tiny speaker-disjoint dataset: training by verification, the export's `embed`
signature, and the embed / enroll / verify / predict --gallery commands."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.decode import write_wav
from tests.conftest import build, make_corpus, utterance

OPEN_TINY = ["--model", "tdnn", "--width", "0.125", "--embedding-dim", "16", "--batch-size", "8", "--epochs", "2",
             "--steps-per-epoch", "3", "--seed", "3"]


def test_chunks_are_consecutive_segments_of_one_recording():
    from trainer.open_set import make_chunks

    seg = 4
    ramp = lambda start, n: (np.arange(start, start + n) % 32000).astype(np.int16)  # noqa: E731
    segments = {"r1": ("s:a", "r1", [(8, ramp(8, 4)), (0, ramp(0, 4)), (4, ramp(4, 4)), (20, ramp(20, 4)),
                                     (12, ramp(12, 4))]),
                "r2": ("s:b", "r2", [(0, ramp(100, 4)), (4, ramp(104, 4))])}
    chunks = make_chunks(segments, seg, chunk_seconds=12 / 16000)  # 12 samples: three segments
    assert chunks.speakers == ["s:a"] and chunks.recordings == ["r1"]  # r2 is too short; 20 is after a gap
    np.testing.assert_array_equal(np.round(chunks.waves[0] * 32768), np.arange(0, 12))


def test_training_crops_join_segments_of_one_speaker(tmp_path):
    import tensorflow as tf

    from pipelines.dataset_meta import DatasetMeta
    from trainer.open_set import CropConfig, FrontEnd, crop_dataset

    manifest = make_corpus(tmp_path / "corpus", speakers=3, recordings=3)
    out = tmp_path / "ds"
    build(manifest, out, "--split-by", "speaker", "--split-fractions", "1,0,0")
    meta = DatasetMeta.read(str(out))
    mels = meta.feature_config.num_mel_bins
    front = FrontEnd(meta.feature_config, np.zeros(mels, np.float32), np.ones(mels, np.float32))
    vocab = ["test:s0", "test:s1", "test:s2"]
    crops = CropConfig(segments_per_crop=3, min_crop_seconds=2.0, speed_perturb=True)
    ds = crop_dataset(meta.files(str(out), "train"), meta, vocab, front, 4, crops, None, seed=0)
    lengths = set()
    for (x, y), y2 in ds.take(6):
        assert x.shape[0] == 4 and x.shape[2] == mels and tf.reduce_all(y == y2)
        assert int(tf.reduce_min(y)) >= 0 and int(tf.reduce_max(y)) < 3 * len(vocab)  # 3 speeds, 3 speakers
        lengths.add(int(x.shape[1]))
    assert min(lengths) >= 150 and max(lengths) <= 330  # 2-3 s crops, changed in speed by 0.9-1.1


@pytest.fixture(scope="session")
def open_set_job(tmp_path_factory):
    """A tiny open-set model: 8 speakers split 4 / 2 / 2, trained for a few steps."""
    from pipelines import preprocess
    from trainer import task

    root = tmp_path_factory.mktemp("open")
    manifest = make_corpus(root / "corpus", speakers=8, recordings=2,
                           pattern=(1.6, 0.8, 1.3, 0.3, 1.2, 1.5, 1.0, 0.6, 1.4))
    data = root / "ds"
    build(manifest, data, "--split-by", "speaker", "--split-fractions", "0.5,0.25,0.25")
    preprocess.run(["--dataset", str(data)])
    job = root / "job"
    metrics = task.train_and_evaluate(task.get_args(["--data-dir", str(data), "--job-dir", str(job), *OPEN_TINY]))
    return job, metrics, root


@pytest.mark.slow
def test_open_set_training_reports_verification_on_unseen_speakers(open_set_job):
    job, metrics, _ = open_set_job
    t = metrics["test"]
    assert 0 <= t["eer"] <= 1 and 0 <= t["min_dcf"] <= 1.0 + 1e-9 and t["num_speakers"] == 2
    assert t["num_target_trials"] > 0 and t["num_nontarget_trials"] > 0
    on_disk = json.loads((job / "metrics.json").read_text())
    assert on_disk["test"]["eer"] == t["eer"] and on_disk["training"]["mode"] == "open_set"
    assert (job / "det.png").read_bytes()[:4] == b"\x89PNG"
    html = (job / "report.html").read_text()  # trainer.job_page
    assert f"<b>{t['eer']:.2%}</b><span>EER</span>" in html and "DET curve" in html
    # TensorBoard: the test metrics, the DET image, the test chunks in the projector
    from tests.trainer.test_summaries import projector_rows, read_events

    events = read_events(str(job / "logs" / "test"))
    assert float(events["test/eer"][1]) == pytest.approx(t["eer"]) and "test/min_dcf" in events
    assert events["test/det"][0] == "images" and events["test/det"][1][2][:4] == b"\x89PNG"
    rows = projector_rows(job / "logs" / "test")
    assert len(rows) - 1 == t["num_chunks"] > 0
    assert {r[1] for r in rows[1:]} == {"test"} and len({r[0] for r in rows[1:]}) == 2


@pytest.mark.slow
def test_the_export_embeds_any_length_and_serves_segments(open_set_job):
    import tensorflow as tf

    from trainer import export

    job, metrics, _ = open_set_job
    model, info = export.load(str(job / "export"))
    assert info.kind == "open_set" and info.embedding_dim == 16 and info.threshold is not None and info.model_id
    lite = tf.lite.Interpreter(model_path=str(job / "export" / export.EMBED_TFLITE)).get_signature_runner("embed")
    for seconds in (0.5, 3.0, 7.3):
        wave = utterance(150, (seconds,), seed=1).astype(np.float32) / 32768.0
        emb = model.signatures["embed"](waveform=tf.constant(wave))["embedding"].numpy()
        assert emb.shape == (16,) and abs(np.linalg.norm(emb) - 1) < 1e-4
        assert np.abs(lite(waveform=wave)["embedding"] - emb).max() < 1e-4  # TFLite: any length too
    out = model.signatures["serving_default"](waveform=tf.zeros([3, info.segment_samples]))
    assert out["embedding"].shape == (3, 16) and out["probabilities"].shape == (3, len(info.speakers))


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_embed_enroll_verify_and_predict_with_a_gallery(open_set_job, tmp_path):
    job, _, _ = open_set_job
    model = job / "export"
    files = {}
    for name, f0 in (("ann", 130), ("bob", 210), ("cid", 300)):
        for k in range(3):
            files[name, k] = tmp_path / f"{name}{k}.wav"
            write_wav(files[name, k], utterance(f0, (2.0, 0.3, 1.5), seed=50 + k))
    proc = run("trainer.embed", "--model", model, "--json", files["ann", 0], tmp_path / "missing.wav")
    assert proc.returncode == 1 and "missing_file" in proc.stderr
    emb = json.loads(proc.stdout)["embedding"]
    assert len(emb) == 16 and abs(np.linalg.norm(emb) - 1) < 1e-4
    gallery = tmp_path / "g.json"
    for name in ("ann", "bob"):
        proc = run("trainer.enroll", "--model", model, "--gallery", gallery, "--speaker", name,
                   files[name, 0], files[name, 1])
        assert proc.returncode == 0, proc.stderr[-2000:]
    stored = json.loads(gallery.read_text())
    assert sorted(stored["speakers"]) == ["ann", "bob"] and stored["speakers"]["ann"]["count"] == 2
    proc = run("trainer.verify", "--model", model, "--json", files["ann", 2], files["ann", 1])
    result = json.loads(proc.stdout)
    assert proc.returncode == (0 if result["same_speaker"] else 3) and -1.5 < result["score"] < 1.5
    proc = run("trainer.verify", "--model", model, "--gallery", gallery, "--speaker", "bob", files["bob", 2],
               "--threshold", "-100")
    assert proc.returncode == 0 and "same speaker" in proc.stdout
    proc = run("trainer.predict", "--model", model, "--gallery", gallery, "--json", "--threshold", "100",
               files["cid", 0])
    assert json.loads(proc.stdout)["speaker"] == "unknown"
    proc = run("trainer.predict", "--model", model, "--gallery", gallery, "--json", "--threshold", "-100",
               files["ann", 2], files["bob", 2])
    named = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["speaker"] in ("ann", "bob") for r in named] == [True, True]
    proc = run("trainer.verify", "--model", model, "--gallery", gallery, "--speaker", "zed", files["ann", 2])
    assert proc.returncode == 2 and "not enrolled" in proc.stderr
