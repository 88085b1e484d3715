"""The training job's HTML report, JOB/report.html (beside report.md, which stays for terminals): the
metrics, a sortable per-speaker table (closed set), the confusion matrix, the training curves of
history.csv, and for open-set jobs EER, minDCF and the DET figure.

Rendered from the job folder's files only (metrics.json, history.csv, confusion.png, det.png), so it can be
redrawn for any finished job:

    python -m trainer.job_page JOB

trainer.task and trainer.open_set call `write_page` after writing metrics.json. Images are inlined, so the
page is one file. Local or gs:// (tf.io.gfile, imported only for remote paths).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

from pipelines import html_page as hp
from pipelines.paths import exists, join, read_bytes

REPORT_HTML = "report.html"
HISTORY_CSV = "history.csv"  # Keras CSVLogger, written by trainer.task.fit_resumable
CONFUSION_PNG = "confusion.png"
DET_PNG = "det.png"
METRICS_JSON = "metrics.json"
SPLITS = ("test", "validation")  # where the evaluation is stored, in order of preference


class JobError(ValueError):
    """A job folder the page cannot be drawn from; the message says why."""


def _optional(path: str) -> Optional[bytes]:
    return read_bytes(path) if exists(path) else None


def read_history(text: str) -> Dict[str, List[Optional[float]]]:
    """history.csv as {column: values}; a resumed run appends rows, which are kept in order."""
    columns: Dict[str, List[Optional[float]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        for k, v in row.items():
            if k is None:
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = None
            columns.setdefault(k, []).append(x if x is not None and math.isfinite(x) else None)
    return columns


def curve_charts(history: Mapping[str, Sequence[Optional[float]]]) -> List[str]:
    """One chart per quantity: its train and val_ series together (loss, accuracy, eer, ...)."""
    n = max((len(v) for v in history.values()), default=0)
    xs = list(range(1, n + 1))  # epochs in the order they ran (a resumed run restarts Keras's epoch column)
    names = [k for k in history if k not in ("epoch", "lr", "learning_rate")]
    base = []
    for k in names:
        b = k[4:] if k.startswith("val_") else k
        if b not in base:
            base.append(b)
    charts = []
    for b in base:
        series = {k: (xs, history[k]) for k in (b, f"val_{b}") if k in history}
        if any(v is not None for _, ys in series.values() for v in ys):
            charts.append(hp.lines_svg(series, b, "epoch"))
    return charts


def _pct(x) -> str:
    return f"{x:.2%}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _num(x, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def render(job_dir: str) -> str:
    """The page's HTML; JobError when the job has no readable metrics.json."""
    raw = _optional(join(job_dir, METRICS_JSON))
    if raw is None:
        raise JobError(f"{job_dir} holds no {METRICS_JSON}: point it at a finished trainer.task job folder")
    try:
        metrics = json.loads(raw)
    except ValueError as exc:
        raise JobError(f"{join(job_dir, METRICS_JSON)} is not JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise JobError(f"{join(job_dir, METRICS_JSON)} is not a JSON object")
    split = next((s for s in SPLITS if isinstance(metrics.get(s), dict)), None)
    m: Dict[str, Any] = metrics.get(split, {}) if split else {}
    training = metrics.get("training") if isinstance(metrics.get("training"), dict) else {}
    open_set = training.get("mode") == "open_set" or "min_dcf" in m

    body = [hp.paragraph(f"Evaluated on the {split or '(no)'} split; "
                         f"{'open set (speakers never trained on)' if open_set else 'closed set'}.")]
    if open_set:
        head = {"EER": _pct(m.get("eer")), "minDCF": _num(m.get("min_dcf")),
                "score normalisation": m.get("score_normalization", "n/a"),
                "target trials": m.get("num_target_trials", "n/a"),
                "non-target trials": m.get("num_nontarget_trials", "n/a"), "speakers": m.get("num_speakers", "n/a"),
                "threshold": _num(m.get("threshold"))}
    else:
        head = {"accuracy": _pct(m.get("accuracy")), "macro F1": _num(m.get("macro_f1")),
                "EER (all segment pairs)": _pct(m.get("eer")), "examples": m.get("num_examples", "n/a"),
                "speakers": m.get("num_speakers", "n/a")}
    body.append(hp.figures(head))
    scalars = {f"{split}.{k}": v for k, v in m.items() if isinstance(v, (int, float, str, bool)) and k not in ("labels",)}
    for k, v in m.items():
        if isinstance(v, dict) and k not in ("per_speaker",):
            scalars.update({f"{split}.{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, (int, float, str, bool))})
    scalars.update({f"training.{k}": v for k, v in training.items() if isinstance(v, (int, float, str, bool))})
    rows = [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in sorted(scalars.items())]
    all_metrics = hp.section("All metrics", hp.table([("metric", False), ("value", False)], rows, "metrics",
                                                     sortable=False))

    per = m.get("per_speaker") if isinstance(m.get("per_speaker"), dict) else {}
    if per:
        rows = [[name, *(hp.number(s.get(k), 3) for k in ("precision", "recall", "f1")), s.get("support")]
                for name, s in sorted(per.items()) if isinstance(s, dict)]
        cols = [("speaker", False), ("precision", True), ("recall", True), ("F1", True), ("support", True)]
        body.append(hp.section("Per speaker", hp.paragraph(f"{len(rows)} speakers; click a heading to sort."),
                               hp.table(cols, rows, "per-speaker", tall=True)))

    images = []
    for name, alt in ((CONFUSION_PNG, "confusion matrix"), (DET_PNG, "DET curve")):
        data = _optional(join(job_dir, name))
        if data:
            images.append(hp.section(alt[0].upper() + alt[1:], hp.png_img(data, alt)))
    history = _optional(join(job_dir, HISTORY_CSV))
    if history:
        charts = curve_charts(read_history(history.decode("utf-8", "replace")))
        body.append(hp.section("Training curves", f"<div class=\"charts\">{''.join(charts)}</div>"))
    body += images
    body.append(all_metrics)
    name = job_dir.rstrip("/").rsplit("/", 1)[-1]
    return hp.document(f"Training job: {name}", body)


def write_page(job_dir: str) -> str:
    """Write JOB/report.html; its path."""
    path = join(job_dir, REPORT_HTML)
    data = render(job_dir).encode("utf-8")
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="(Re)draw JOB/report.html from a training job folder's files.")
    p.add_argument("job_dir", help="a --job-dir of python -m trainer.task (local or gs://)")
    args = p.parse_args(argv)
    try:
        print(write_page(args.job_dir))
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
