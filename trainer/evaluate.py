"""Test-split evaluation: classification metrics, speaker-verification EER, confusion plot, report.

Pure numpy + matplotlib (TensorFlow only for gs:// I/O, imported when needed). The trainer calls, after training:

    m = classification_metrics(y_true, y_pred, labels)
    m["verification"] = equal_error_rate(embeddings, speaker_ids)
    write_evaluation(job_dir, m, m["confusion"], labels)   # metrics.json, confusion.png, report.md

EER: every pair of test segments (i < j) is scored by cosine similarity; a pair of one speaker is a target trial.
Small sets (n < 3000 by default) are computed exactly from the sorted scores. Larger sets are streamed in row
blocks into a fixed histogram of `bins` bins over [-1, 1] (40,000 by default: score resolution 5e-5), so memory
stays at a few tens of MB for any n; n = 20,000 (200M pairs) takes seconds. FAR and FRR are exact at every bin edge
(scores are float32 there, ~1e-6 off the float64 value), and the EER is interpolated inside one bin, so it is off
the exact value by at most the share of trials in that bin (`eer_error_bound`, returned; typically < 1e-4).
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from pipelines.paths import is_remote, join

METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion.png"
REPORT_MD = "report.md"

EXACT_BELOW = 3000        # n below this: exact EER from sorted scores (n=3000: 4.5M pairs, ~100 MB)
DEFAULT_BINS = 40000      # histogram EER: bin width 2 / 40000 = 5e-5 in cosine score
BLOCK_ELEMENTS = 1 << 22  # pair scores per block in the histogram path (16 MB float32 + 16 MB int32 bins)
MAX_LABELED_TICKS = 40    # confusion_png: more speakers than this and tick labels are hidden
MAX_REPORT_ROWS = 50      # markdown_report: lowest-recall speakers listed

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- classification
def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, macro F1, per-speaker precision/recall/F1/support and the confusion matrix.

    `y_true`/`y_pred` are label indices into `labels`. Macro F1 averages over the classes present in y_true or
    y_pred (a class never seen in either has no meaningful F1); a class with no correct prediction has F1 = 0.
    Undefined precision or recall (nothing predicted / no support) is reported as 0.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    labels = [str(x) for x in labels]
    k = len(labels)
    if len(set(labels)) != k:
        raise ValueError("labels must be unique")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} != {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k):
            raise ValueError(f"{name} must hold integer label indices in [0, {k})")
    n = int(y_true.size)
    confusion = np.bincount(y_true.astype(np.int64) * k + y_pred.astype(np.int64), minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    per_speaker = {
        labels[i]: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                    "support": int(support[i])}
        for i in range(k)
    }
    return {
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "num_examples": n,
        "num_labels": k,
        "num_test_speakers": int((support > 0).sum()),
        "per_speaker": per_speaker,
        "confusion": confusion.tolist(),
    }


# ---------------------------------------------------------------------------------------------- verification
def _eer_from_levels(levels: np.ndarray, top: float, tgt: np.ndarray, non: np.ndarray,
                     quantized: bool) -> Dict[str, Any]:
    """EER from trial counts at ascending score levels (a level holds scores in [levels[m], levels[m+1])).

    Operating point m accepts scores >= levels[m] (point M, threshold `top`, accepts nothing). FRR rises and FAR
    falls with m; the EER is where the straight segment between the two points around the crossing meets
    FAR = FRR (with tied scores this is the expected error under random tie-breaking).
    """
    nt, nn = int(tgt.sum()), int(non.sum())
    out: Dict[str, Any] = {"eer": float("nan"), "threshold": float("nan"), "num_target_pairs": nt,
                           "num_nontarget_pairs": nn, "eer_error_bound": float("nan")}
    if nt == 0 or nn == 0:
        return out
    keep = (tgt + non) > 0                      # an empty level repeats the next operating point
    levels, tgt, non = levels[keep], tgt[keep], non[keep]
    thresholds = np.append(levels.astype(np.float64), top)
    frr = np.concatenate([[0], np.cumsum(tgt)]) / nt
    far = (nn - np.concatenate([[0], np.cumsum(non)])) / nn
    d = frr - far                                # strictly increasing from -1 to 1
    k = int(np.argmax(d >= 0))
    if d[k] == 0:
        eer, thr, bound = float(far[k]), float(thresholds[k]), 0.0
    else:
        a = -d[k - 1] / (d[k] - d[k - 1])
        eer = float(far[k - 1] + a * (far[k] - far[k - 1]))
        thr = float(thresholds[k - 1] + a * (thresholds[k] - thresholds[k - 1]))
        # the exact curve passes through both neighbouring points, so it meets the diagonal inside their box
        bound = max(0.0, float(min(far[k - 1], frr[k]) - max(far[k], frr[k - 1]))) if quantized else 0.0
    out.update(eer=eer, threshold=thr, eer_error_bound=bound)
    return out


def _exact_levels(target_scores: np.ndarray, nontarget_scores: np.ndarray):
    scores = np.concatenate([target_scores, nontarget_scores]).astype(np.float64)
    is_tgt = np.concatenate([np.ones(target_scores.size, bool), np.zeros(nontarget_scores.size, bool)])
    levels, inverse = np.unique(scores, return_inverse=True)
    tgt = np.bincount(inverse[is_tgt], minlength=levels.size)
    non = np.bincount(inverse[~is_tgt], minlength=levels.size)
    top = float(np.nextafter(levels[-1], np.inf)) if levels.size else 1.0
    return levels, top, tgt, non


def _bin_index(scaled: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each score from scaled = (score + 1) * bins / 2 (bins of equal width over [-1, 1]; scores
    outside are clipped into the end bins). `scaled` is clobbered."""
    np.clip(scaled, 0.0, bins - 1, out=scaled)
    return scaled.astype(np.int32)            # truncation = floor for non-negative values


def _histogram_result(tgt: np.ndarray, non: np.ndarray, bins: int) -> Dict[str, Any]:
    edges = np.linspace(-1.0, 1.0, bins + 1)
    hit = np.nonzero(tgt + non)[0]
    top = float(edges[hit[-1] + 1]) if hit.size else 1.0
    return _eer_from_levels(edges[:-1], top, tgt, non, quantized=True)


def eer_from_scores(target_scores: np.ndarray, nontarget_scores: np.ndarray,
                    bins: Optional[int] = None) -> Dict[str, Any]:
    """EER of a set of trial scores: exact (sorted scores) or, with `bins`, from a histogram over [-1, 1]."""
    t = np.asarray(target_scores, dtype=np.float64).ravel()
    n = np.asarray(nontarget_scores, dtype=np.float64).ravel()
    if bins is None:
        res = _eer_from_levels(*_exact_levels(t, n), quantized=False)
        res["method"] = "exact"
        return res
    tgt = np.bincount(_bin_index((t + 1.0) * (bins / 2.0), bins), minlength=bins)
    non = np.bincount(_bin_index((n + 1.0) * (bins / 2.0), bins), minlength=bins)
    res = _histogram_result(tgt, non, bins)
    res.update(method="histogram", bins=bins, score_resolution=2.0 / bins)
    return res


def _normalize(embeddings: np.ndarray, dtype) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings hold NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(dtype)   # a zero vector scores 0 against everything


def equal_error_rate(embeddings: np.ndarray, speakers: np.ndarray, method: str = "auto",
                     bins: int = DEFAULT_BINS, exact_below: int = EXACT_BELOW,
                     block_elements: int = BLOCK_ELEMENTS) -> Dict[str, Any]:
    """Speaker-verification EER over all pairs i < j of segments, scored by cosine similarity.

    method: "exact" (all pair scores in memory, float64), "histogram" (streamed in blocks, bounded memory) or
    "auto" (exact when n < exact_below). Returns eer, threshold (cosine score where FAR = FRR), the pair counts,
    method, and eer_error_bound (0 when exact). EER and threshold are NaN without both kinds of pair.
    """
    speakers = np.asarray(speakers).ravel()
    x = np.asarray(embeddings)
    n = x.shape[0] if x.ndim else 0
    if speakers.size != n:
        raise ValueError(f"{n} embeddings but {speakers.size} speakers")
    if method == "auto":
        method = "exact" if n < exact_below else "histogram"
    if method not in ("exact", "histogram"):
        raise ValueError(f"unknown method {method!r}")
    _, codes = np.unique(speakers, return_inverse=True)
    codes = codes.ravel()
    if method == "exact":
        xn = _normalize(x, np.float64)
        i, j = np.triu_indices(n, 1)
        scores = (xn @ xn.T)[i, j]
        same = codes[i] == codes[j]
        res = eer_from_scores(scores[same], scores[~same])
    else:
        res = _histogram_pairs(_normalize(x, np.float32), codes, bins, block_elements)
        res.update(method="histogram", bins=bins, score_resolution=2.0 / bins)
    res["num_segments"] = int(n)
    res["num_speakers"] = int(np.unique(codes).size)
    return res


def _histogram_pairs(xn: np.ndarray, codes: np.ndarray, bins: int, block_elements: int) -> Dict[str, Any]:
    """Stream the upper triangle of the cosine-score matrix, a block of rows at a time, into bin counts.

    Segments are sorted by speaker, so a block's target pairs sit in a narrow band of columns next to the
    diagonal; all pairs and target pairs are counted from the same float32 scores, nontarget = all - target.
    """
    n = xn.shape[0]
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    # rows [sqrt(h) x, sqrt(h)] with h = bins / 2: their dot products are (cos + 1) * h, the bin coordinate,
    # straight out of the matrix product (float32: ~0.01 bin off at worst, well inside the stated resolution)
    half = bins / 2.0
    xn = np.hstack([xn[order] * np.float32(math.sqrt(half)), np.full((n, 1), math.sqrt(half), np.float32)])
    run_end = np.searchsorted(codes, codes, side="right")   # end of each segment's speaker run
    total = np.zeros(bins + 1, np.int64)                    # index `bins` collects the pairs i >= j
    target = np.zeros(bins + 1, np.int64)
    rows = max(1, min(n, block_elements // max(n, 1)))
    for a in range(0, max(n - 1, 0), rows):
        b = min(n, a + rows)
        idx = _bin_index(xn[a:b] @ xn[a:].T, bins)          # (b - a, n - a): rows a..b-1, columns a..n-1
        idx[:, : b - a][np.tril(np.ones((b - a, b - a), bool))] = bins
        total += np.bincount(idx.ravel(), minlength=bins + 1)
        e = int(run_end[b - 1]) - a
        same = codes[a:b, None] == codes[None, a:a + e]
        target += np.bincount(idx[:, :e][same], minlength=bins + 1)
    tgt = target[:bins]
    return _histogram_result(tgt, total[:bins] - tgt, bins)


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
