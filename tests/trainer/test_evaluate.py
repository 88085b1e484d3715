"""trainer.evaluate: a split evaluated through a model, the confusion plot, the report and metrics.json."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from trainer import evaluate as ev
from trainer.metrics import classification_metrics, equal_error_rate
from tests.trainer.test_metrics import clustered

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes):
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------------------------------------- plot, report, files
def test_short_labels_keep_both_ends():
    assert ev._short("librivox:52") == "librivox:52"
    s = ev._short("youtube:UCabcdefghijklmnopqrstuvwxyz")
    assert len(s) == 18 and s.startswith("youtube:") and s.endswith("wxyz") and "…" in s


@pytest.mark.parametrize("k", [3, 120])
def test_confusion_png(tmp_path, k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 40 * k)
    p = np.where(rng.random(y.size) < 0.7, y, rng.integers(0, k, y.size))
    labels = [f"youtube:UC{i:04d}-a-rather-long-channel-id" for i in range(k)]
    conf = classification_metrics(y, p, labels)["confusion"]
    ev.confusion_png(conf, labels, str(tmp_path / "c.png"))
    data = (tmp_path / "c.png").read_bytes()
    w, h = png_size(data)
    assert 300 < w < 2000 and 300 < h < 2000
    buf = io.BytesIO()
    ev.confusion_png(np.asarray(conf), labels, buf)
    assert buf.getvalue()[:8] == PNG_MAGIC
    with pytest.raises(ValueError):
        ev.confusion_png(conf, labels[:-1], buf)


def metrics_for(k, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, 30 * k)
    p = np.where(rng.random(y.size) < 0.8, y, rng.integers(0, k, y.size))
    labels = [f"librivox:{1000 + i}" for i in range(k)]
    m = classification_metrics(y, p, labels)
    emb, spk = clustered(300, 10, 8, 1.0, seed)
    m["verification"] = equal_error_rate(emb, spk)
    return m, labels


def test_markdown_report_lists_worst_speakers():
    m, labels = metrics_for(120)
    md = ev.markdown_report(m)
    assert f"| accuracy | {m['accuracy']:.2%} |" in md
    assert f"| macro F1 | {m['macro_f1']:.4f} |" in md
    assert f"{m['verification']['eer']:.2%}" in md and "![confusion matrix](confusion.png)" in md
    assert f"| test examples | {m['num_examples']} |" in md
    rows = [line for line in md.splitlines() if line.startswith("| librivox:")]
    assert len(rows) == 50
    recalls = [float(r.split("|")[3]) for r in rows]
    assert recalls == sorted(recalls)
    assert recalls[0] == pytest.approx(min(s["recall"] for s in m["per_speaker"].values()), abs=5e-4)
    small, _ = metrics_for(3)
    assert len([line for line in ev.markdown_report(small).splitlines() if line.startswith("| librivox:")]) == 3


def test_write_evaluation_merges_into_existing_metrics(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps({"train": {"loss": 0.25}, "test": {"loss": 0.5, "eer": 0.9}}))
    m, labels = metrics_for(5)
    out = ev.write_evaluation(str(job), m, m["confusion"], labels)
    saved = json.loads((job / "metrics.json").read_text())
    assert saved == out
    assert saved["train"] == {"loss": 0.25} and saved["test"]["loss"] == 0.5
    assert saved["test"]["accuracy"] == pytest.approx(m["accuracy"])
    assert saved["test"]["macro_f1"] == pytest.approx(m["macro_f1"])
    assert saved["test"]["eer"] == pytest.approx(m["verification"]["eer"]) and saved["test"]["eer"] != 0.9
    assert saved["test"]["confusion"] == m["confusion"] and saved["test"]["labels"] == labels
    assert (job / "confusion.png").read_bytes()[:8] == PNG_MAGIC
    assert "![confusion matrix](confusion.png)" in (job / "report.md").read_text()
    assert sorted(p.name for p in job.iterdir()) == ["confusion.png", "metrics.json", "report.md"]


def test_write_evaluation_without_eer_and_to_a_new_folder(tmp_path):
    m = classification_metrics([0, 1], [0, 0], ["a", "b"])
    m["verification"] = equal_error_rate(np.eye(2), ["a", "b"])       # no target pairs: EER undefined
    ev.write_evaluation(str(tmp_path / "new" / "job"), m, m["confusion"], ["a", "b"])
    text = (tmp_path / "new" / "job" / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["test"]["eer"] is None
    assert "n/a" in (tmp_path / "new" / "job" / "report.md").read_text()


def test_write_evaluation_remote_path_uses_gfile():
    tf = pytest.importorskip("tensorflow")
    job = f"ram://evaluate-test-{time.time_ns()}/job"
    tf.io.gfile.makedirs(job)
    with tf.io.gfile.GFile(job + "/metrics.json", "w") as f:
        f.write(json.dumps({"validation": {"accuracy": 0.5}}))
    m, labels = metrics_for(4)
    ev.write_evaluation(job, m, m["confusion"], labels)
    with tf.io.gfile.GFile(job + "/metrics.json") as f:
        saved = json.loads(f.read())
    assert saved["validation"] == {"accuracy": 0.5}
    assert saved["test"]["accuracy"] == pytest.approx(m["accuracy"])
    with tf.io.gfile.GFile(job + "/confusion.png", "rb") as f:
        assert f.read()[:8] == PNG_MAGIC
    assert tf.io.gfile.exists(job + "/report.md")
