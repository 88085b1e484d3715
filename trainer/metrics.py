"""Evaluation metrics, pure numpy: classification (accuracy, macro F1, per speaker, confusion) and
speaker-verification EER over all pairs of segments scored by cosine similarity.

EER: every pair of segments (i < j) is a trial; a pair of one speaker is a target trial. Small sets
(n < 3000 by default) are computed exactly from the sorted scores. Larger sets are streamed in row
blocks into a fixed histogram of `bins` bins over [-1, 1] (40,000 by default: score resolution 5e-5), so
memory stays at a few tens of MB for any n. FAR and FRR are exact at every bin edge (scores are float32
there, ~1e-6 off the float64 value), and the EER is interpolated inside one bin, so it is off the exact
value by at most the share of trials in that bin (`eer_error_bound`, returned).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np

EXACT_BELOW = 3000        # n below this: exact EER from sorted scores (n=3000: 4.5M pairs, ~100 MB)
DEFAULT_BINS = 40000      # histogram EER: bin width 2 / 40000 = 5e-5 in cosine score
BLOCK_ELEMENTS = 1 << 22  # pair scores per block in the histogram path (16 MB float32 + 16 MB int32 bins)


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
