"""Evaluation after training: run the model over a split, compute its metrics (trainer.metrics) and
write metrics.json, confusion.png and report.md to the job folder.

    result = evaluate_split(net, dataset, vocab)        # tf.data batches (x, label, extra columns)
    write_evaluation(job_dir, result.metrics, result.confusion, vocab)

matplotlib for the plot; TensorFlow only for running the model and for gs:// I/O.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from pipelines.paths import is_remote, join
from trainer.metrics import classification_metrics, equal_error_rate

METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion.png"
REPORT_MD = "report.md"
MAX_LABELED_TICKS = 40    # confusion_png: more speakers than this and tick labels are hidden
MAX_REPORT_ROWS = 50      # markdown_report: lowest-recall speakers listed

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SplitEvaluation:
    """A split's classification and verification results."""

    metrics: Dict[str, Any]  # accuracy, macro_f1, eer, num_examples, num_speakers, per_speaker, verification
    confusion: np.ndarray
    embeddings: Optional[np.ndarray] = None  # [n, dim], one per segment (TensorBoard's projector)
    speakers: Sequence[str] = ()             # the segments' speaker keys
    recordings: Sequence[str] = ()           # and recordings


def evaluate_split(net, dataset, vocab: Sequence[str], speaker_key: str = "speaker") -> SplitEvaluation:
    """Run `net` (outputs `probabilities` and `embedding`) over `dataset` (batches of (x, label, extra) with
    the speaker key in extra): accuracy and macro F1 on the known speakers, EER over all segment pairs."""
    probs, embs, labels, speakers, recordings = [], [], [], [], []
    for x, y, extra in dataset:
        out = net(x, training=False)
        probs.append(out["probabilities"].numpy())
        embs.append(out["embedding"].numpy())
        labels.append(y.numpy())
        speakers.append(extra[speaker_key].numpy())
        if "recording" in extra:
            recordings.append(extra["recording"].numpy())
    probs, embs = np.concatenate(probs), np.concatenate(embs)
    labels, speakers = np.concatenate(labels), np.concatenate(speakers)
    known = labels >= 0
    cls = classification_metrics(labels[known], probs[known].argmax(1), vocab)
    ver = equal_error_rate(embs, speakers)
    metrics = {"accuracy": cls["accuracy"], "macro_f1": cls["macro_f1"], "eer": ver["eer"],
               "num_examples": int(known.sum()), "num_speakers": len(set(speakers.tolist())),
               "per_speaker": cls["per_speaker"], "verification": ver}
    return SplitEvaluation(metrics, cls["confusion"], embs, _texts(speakers),
                           _texts(np.concatenate(recordings)) if recordings else ())


def _texts(values) -> list:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


# ---------------------------------------------------------------------------------------------- I/O helpers
def _read_text(path: str) -> Optional[str]:
    if is_remote(path):
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "r") as f:
            return f.read()
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write_bytes(path: str, data: bytes) -> None:
    if is_remote(path):
        import tensorflow as tf

        if tf.io.gfile.exists(path):       # replace, not append: TF's ram:// file system appends otherwise
            tf.io.gfile.remove(path)
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _makedirs(path: str) -> None:
    if is_remote(path):
        import tensorflow as tf

        tf.io.gfile.makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def _jsonable(x):
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and infinities as null."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------------------------- plot and report
def _short(label: str, width: int = 18) -> str:
    """Keep both ends of a long label: keys differ at the end (`youtube:UC…Xyz`), names at the start."""
    label = str(label)
    if len(label) <= width:
        return label
    head = (width - 1) // 2
    return label[:head] + "…" + label[-(width - 1 - head):]


def confusion_png(confusion, labels: Sequence[str], path_or_file) -> None:
    """Confusion matrix as PNG: colour = share of the true speaker's segments, counts written when it fits.

    Rows are true speakers, columns predicted. Tick labels are shown for up to 40 speakers (truncated to 18
    characters); beyond that the axes show label indices. `path_or_file` is a local or gs:// path, or a binary
    file object.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cm = np.asarray(confusion, dtype=np.int64)
    k = len(labels)
    if cm.shape != (k, k):
        raise ValueError(f"confusion has shape {cm.shape}, expected ({k}, {k}) for {k} labels")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    labeled = k <= MAX_LABELED_TICKS
    side = min(14.0, max(4.5, 0.3 * k + 2.5)) if labeled else 12.0
    fig = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="share of the true speaker's test segments")
    if labeled:
        names = [_short(x) for x in labels]
        size = 9 if k <= 15 else 7
        ax.set_xticks(range(k), names, rotation=90, fontsize=size)
        ax.set_yticks(range(k), names, fontsize=size)
        ax.set_xlabel("predicted speaker")
        ax.set_ylabel("true speaker")
    else:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.tick_params(labelsize=8)
        ax.set_xlabel(f"predicted speaker (label index; {k} speakers, names: metrics.json test.labels)")
        ax.set_ylabel("true speaker (label index)")
    if k <= 25:
        size = 9 if k <= 10 else 7 if k <= 18 else 5.5
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=size,
                    color="white" if share[i, j] > 0.5 else "black")
    total = int(cm.sum())
    acc = f", accuracy {np.trace(cm) / total:.1%}" if total else ""
    ax.set_title(f"Confusion matrix: {total} test segments, {k} speakers{acc}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    data = buf.getvalue()
    if isinstance(path_or_file, (str, os.PathLike)):
        _write_bytes(os.fspath(path_or_file), data)
    else:
        path_or_file.write(data)


def _verification(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """The EER fields wherever the caller put them: m["verification"] (equal_error_rate's dict), m["eer"] as that
    dict, or flat keys merged into m (eer, threshold, num_target_pairs, ...)."""
    v = metrics.get("verification")
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(metrics.get("eer"), Mapping):
        return dict(metrics["eer"])
    out = {k: metrics[k] for k in ("eer", "threshold", "num_target_pairs", "num_nontarget_pairs",
                                   "eer_error_bound", "method") if k in metrics}
    if "eer_threshold" in metrics:
        out.setdefault("threshold", metrics["eer_threshold"])
    return out


def _num(x) -> Optional[float]:
    return float(x) if isinstance(x, (int, float, np.number)) and math.isfinite(float(x)) else None


def _fmt(x, pct: bool = False) -> str:
    v = _num(x)
    if v is None:
        return "n/a"
    return f"{v:.2%}" if pct else f"{v:.4f}"


def markdown_report(metrics: Mapping[str, Any]) -> str:
    """A short Markdown report: headline table, lowest-recall speakers, the confusion image."""
    if "accuracy" not in metrics and isinstance(metrics.get("test"), Mapping):
        metrics = metrics["test"]
    v = _verification(metrics)
    per = metrics.get("per_speaker") or {}
    tested = {k: s for k, s in per.items() if s.get("support", 0) > 0}
    n_labels = metrics.get("num_labels", len(per))
    eer = _fmt(v.get("eer"), pct=True)
    if _num(v.get("eer")) is not None:
        eer += (f" (threshold {float(v['threshold']):.3f}; {v.get('num_target_pairs', 0):,} target / "
                f"{v.get('num_nontarget_pairs', 0):,} non-target pairs)")
    lines = [
        "# Test evaluation", "",
        "| metric | value |", "| --- | --- |",
        f"| accuracy | {_fmt(metrics.get('accuracy'), pct=True)} |",
        f"| macro F1 | {_fmt(metrics.get('macro_f1'))} |",
        f"| EER (cosine, all segment pairs) | {eer} |",
        f"| test examples | {metrics.get('num_examples', 'n/a')} |",
        f"| speakers | {metrics.get('num_test_speakers', len(tested))} in test of {n_labels} |",
        "",
    ]
    if tested:
        worst = sorted(tested.items(), key=lambda kv: (kv[1]["recall"], kv[1]["f1"], kv[0]))
        shown = worst[:MAX_REPORT_ROWS]
        title = ("## Per speaker, lowest recall first" if len(worst) <= MAX_REPORT_ROWS else
                 f"## The {len(shown)} speakers with the lowest recall (of {len(worst)})")
        lines += [title, "", "| speaker | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        for name, s in shown:
            cell = str(name).replace("|", "\\|")
            lines.append(f"| {cell} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
        lines.append("")
    lines += ["## Confusion matrix", "", f"![confusion matrix]({CONFUSION_PNG})", ""]
    return "\n".join(lines)


def write_evaluation(job_dir: str, metrics: Mapping[str, Any], confusion, labels: Sequence[str]) -> Dict[str, Any]:
    """Write metrics.json (merged under "test" into any existing file), confusion.png and report.md to job_dir.

    job_dir may be local or gs://. Returns the merged metrics.json content.
    """
    job_dir = os.fspath(job_dir)
    _makedirs(job_dir)
    v = _verification(metrics)
    test = {k: val for k, val in metrics.items() if k not in ("verification", "confusion", "eer", "threshold")}
    test.update(eer=v.get("eer"), eer_threshold=v.get("threshold"))
    for key in ("num_target_pairs", "num_nontarget_pairs", "eer_error_bound"):
        if key in v:
            test[key] = v[key]
    if "method" in v:
        test["eer_method"] = v["method"]
    test["labels"] = [str(x) for x in labels]
    test["confusion"] = np.asarray(confusion, dtype=np.int64).tolist()

    path = join(job_dir, METRICS_JSON)
    merged: Dict[str, Any] = {}
    text = _read_text(path)
    if text:
        try:
            merged = json.loads(text)
        except ValueError as e:
            log.warning("%s is not valid JSON (%s); writing a new one", path, e)
        if not isinstance(merged, dict):
            log.warning("%s does not hold a JSON object; writing a new one", path)
            merged = {}
    old = merged.get("test")
    merged["test"] = {**(old if isinstance(old, dict) else {}), **test}
    merged = _jsonable(merged)
    _write_bytes(path, (json.dumps(merged, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8"))
    confusion_png(confusion, labels, join(job_dir, CONFUSION_PNG))
    _write_bytes(join(job_dir, REPORT_MD), markdown_report(merged["test"]).encode("utf-8"))
    return merged
