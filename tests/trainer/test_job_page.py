"""trainer.job_page: JOB/report.html from a job folder's files (metrics.json, history.csv, confusion.png,
det.png), closed and open set; its per-speaker table sorts in headless Chromium (slow)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from trainer import evaluate, job_page

HOSTILE = "<b onmouseover=alert(1)>x</b>"


def closed_job(job, n=60):
    job.mkdir(parents=True)
    names = [f"librivox:{i:04d}" for i in range(n - 1)] + [HOSTILE]
    per = {k: {"precision": (i % 10) / 10, "recall": ((i * 7) % 11) / 10, "f1": 0.5, "support": 3 + i % 4}
           for i, k in enumerate(names)}
    metrics = {"test": {"accuracy": 0.8125, "macro_f1": 0.75, "eer": 0.0625, "num_examples": 240, "num_speakers": n,
                        "per_speaker": per, "labels": names, "confusion": np.eye(n, dtype=int).tolist()},
               "training": {"model": "spectrogram_cnn", "epochs_run": 3, "data_dir": HOSTILE}}
    (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "history.csv").write_text("epoch,loss,val_loss,probabilities_accuracy,val_probabilities_accuracy,lr\n"
                                     "0,4.0,3.5,0.1,0.2,0.001\n1,3.0,3.1,0.3,0.3,0.001\n2,2.0,nan,0.5,0.4,0.001\n")
    evaluate.confusion_png(np.eye(n, dtype=int), names, str(job / "confusion.png"))
    return job, metrics


def test_closed_set_page_has_the_metrics_table_confusion_and_curves(tmp_path):
    job, metrics = closed_job(tmp_path / "job")
    assert job_page.write_page(str(job)) == str(job / "report.html")
    html = (job / "report.html").read_text()
    assert "<b>81.25%</b><span>accuracy</span>" in html and "<b>6.25%</b><span>EER (all segment pairs)</span>" in html
    table = html.split("id=\"per-speaker\"", 1)[1].split("</tbody>", 1)[0]
    assert len(re.findall(r"<tr>", table)) == 1 + 60  # heading + one row per speaker
    assert HOSTILE not in html and "&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;" in html
    assert html.count("data:image/png;base64,") == 1 and "DET curve" not in html
    # curves: loss and val_loss in one chart, accuracy in another; the NaN point is left out
    assert html.count("<svg") == 2 and html.count("<polyline") == 4
    loss_chart = html.split("aria-label=\"loss\"", 1)[1].split("</svg>", 1)[0]
    points = re.findall(r"points=\"([^\"]*)\"", loss_chart)
    assert [len(p.split()) for p in points] == [3, 2]


def test_open_set_page_shows_eer_min_dcf_and_det(tmp_path):
    from trainer.verification import det_png

    job = tmp_path / "open"
    job.mkdir()
    metrics = {"test": {"eer": 0.0459, "min_dcf": 0.1885, "num_target_trials": 109, "num_nontarget_trials": 2376,
                        "num_speakers": 19, "score_normalization": "none", "threshold": 0.497,
                        "validation": {"eer": 0.044}},
               "training": {"mode": "open_set", "epochs_run": 9}}
    (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "history.csv").write_text("epoch,accuracy,loss,val_eer,val_min_dcf\n0,0.1,9,0.2,0.6\n1,0.2,7,0.1,0.4\n")
    with open(job / "det.png", "wb") as f:
        det_png({"test (none)": {"p_fa": [0.001, 0.05, 0.4], "p_miss": [0.4, 0.05, 0.001]}}, f)
    html = job_page.render(str(job))
    assert "<b>4.59%</b><span>EER</span>" in html and "<b>0.1885</b><span>minDCF</span>" in html
    assert "DET curve" in html and html.count("data:image/png;base64,") == 1
    assert "id=\"per-speaker\"" not in html
    assert "test.validation.eer" in html
    assert {m for m in re.findall(r"aria-label=\"([^\"]+)\"", html)} >= {"eer", "min_dcf", "loss", "accuracy"}


def test_a_job_without_metrics_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(job_page.JobError, match="holds no metrics.json"):
        job_page.render(str(tmp_path))
    (tmp_path / "metrics.json").write_text("[1, 2]")
    assert job_page.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'metrics.json'} is not a JSON object\n"


@pytest.mark.slow
def test_per_speaker_table_sorts_in_chromium(tmp_path, chromium):
    job, metrics = closed_job(tmp_path / "job")
    job_page.write_page(str(job))
    chromium.get((job / "report.html").as_uri())
    rows = chromium.find_elements("css selector", "#per-speaker tbody tr")
    assert len(rows) == len(metrics["test"]["per_speaker"])
    heads = chromium.find_elements("css selector", "#per-speaker thead th")
    recall = [h.text for h in heads].index("recall")
    heads[recall].click()
    heads[recall].click()  # descending
    shown = chromium.execute_script("return Array.from(document.querySelectorAll('#per-speaker tbody tr')).map("
                                    "r => [r.cells[0].textContent, parseFloat(r.cells[arguments[0]].dataset.v)])", recall)
    expected = sorted(((k, s["recall"]) for k, s in metrics["test"]["per_speaker"].items()),
                      key=lambda kv: -kv[1])
    assert [v for _, v in shown] == [v for _, v in expected]
    assert {k for k, _ in shown} == set(metrics["test"]["per_speaker"])
    assert chromium.execute_script("return document.body.scrollWidth <= window.innerWidth")
    shot = tmp_path / "job_page.png"
    assert chromium.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_training_writes_the_page(trained):
    job, metrics = trained
    html = (job / "report.html").read_text()
    table = html.split("id=\"per-speaker\"", 1)[1].split("</tbody>", 1)[0]
    assert len(re.findall(r"<tr>", table)) == 1 + len(metrics["test"]["per_speaker"])
    assert f"<b>{metrics['test']['accuracy']:.2%}</b><span>accuracy</span>" in html
    assert "aria-label=\"loss\"" in html and "data:image/png;base64," in html
