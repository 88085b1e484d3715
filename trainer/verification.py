"""Speaker verification, numpy only: trials between chunks, cosine scores, adaptive score normalisation,
EER, minDCF and the DET curve.

Trials are all pairs of chunks: a target trial is two chunks of one speaker, taken from different recordings
when the speaker has several, else from disjoint parts of the one recording; every pair of chunks of two
speakers is a non-target trial. minDCF is the NIST detection cost (C_miss = C_fa = 1, p_target 0.01 by
default), normalised by the cost of the best trivial decision, at the best threshold.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from trainer.metrics import eer_from_scores

P_TARGET = 0.01
# identification among enrolled speakers (predict --gallery) decides at the score that 0.5 % of non-target trials
# reach: with N enrolled speakers an impostor is wrongly named about N x that often, where the EER point (about
# 2 % here) would name one in five impostors against ten enrolled speakers
IDENTIFICATION_FALSE_ALARM = 0.005
COHORT_TOP_K = 100


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def trial_masks(speakers: Sequence, recordings: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    """(target, non-target) boolean masks over the upper triangle pairs i < j (as np.triu_indices(n, 1))."""
    speakers, recordings = np.asarray(speakers), np.asarray(recordings)
    n = speakers.size
    i, j = np.triu_indices(n, 1)
    same_speaker = speakers[i] == speakers[j]
    recs_per_speaker: Dict = {}
    for s, r in zip(speakers.tolist(), recordings.tolist()):
        recs_per_speaker.setdefault(s, set()).add(r)
    several = np.array([len(recs_per_speaker[s]) > 1 for s in speakers.tolist()], bool)
    target = same_speaker & ((recordings[i] != recordings[j]) | ~several[i])
    return target, ~same_speaker


def min_dcf(target_scores: np.ndarray, nontarget_scores: np.ndarray, p_target: float = P_TARGET,
            c_miss: float = 1.0, c_fa: float = 1.0) -> Dict[str, float]:
    """Normalised minimum detection cost and its threshold (accept when score >= threshold)."""
    t = np.sort(np.asarray(target_scores, np.float64).ravel())
    n = np.sort(np.asarray(nontarget_scores, np.float64).ravel())
    if not t.size or not n.size:
        return {"min_dcf": float("nan"), "threshold": float("nan"), "p_target": p_target}
    thresholds = np.unique(np.concatenate([t, n, [np.inf]]))
    p_miss = np.searchsorted(t, thresholds, side="left") / t.size  # targets below the threshold
    p_fa = 1.0 - np.searchsorted(n, thresholds, side="left") / n.size  # non-targets at or above it
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    best = int(np.argmin(cost))
    default = min(c_miss * p_target, c_fa * (1 - p_target))
    return {"min_dcf": float(cost[best] / default), "threshold": float(thresholds[best]), "p_target": p_target}


def threshold_at_false_alarm(target_scores: np.ndarray, nontarget_scores: np.ndarray,
                             rate: float = IDENTIFICATION_FALSE_ALARM) -> Dict[str, float]:
    """The lowest threshold (accept when score >= threshold) that at most `rate` of the non-target scores reach,
    and the share of target scores below it (the miss rate there)."""
    t = np.asarray(target_scores, np.float64).ravel()
    n = np.sort(np.asarray(nontarget_scores, np.float64).ravel())[::-1]
    if not n.size:
        return {"threshold": float("nan"), "false_alarm": rate, "miss": float("nan")}
    allowed = int(math.floor(rate * n.size))  # this many non-targets may pass
    threshold = float(np.nextafter(n[allowed], np.inf)) if allowed < n.size else float(n[-1])
    return {"threshold": threshold, "false_alarm": float(np.mean(n >= threshold)),
            "miss": float(np.mean(t < threshold)) if t.size else float("nan")}


def det_points(target_scores: np.ndarray, nontarget_scores: np.ndarray, points: int = 200) -> Dict[str, list]:
    """False-alarm and miss rates at `points` thresholds spread over the scores (for the DET plot)."""
    t = np.sort(np.asarray(target_scores, np.float64))
    n = np.sort(np.asarray(nontarget_scores, np.float64))
    both = np.concatenate([t, n])
    thresholds = np.quantile(both, np.linspace(0, 1, points)) if both.size else np.zeros(0)
    p_miss = np.searchsorted(t, thresholds, side="left") / max(1, t.size)
    p_fa = 1.0 - np.searchsorted(n, thresholds, side="left") / max(1, n.size)
    return {"threshold": thresholds.tolist(), "p_miss": p_miss.tolist(), "p_fa": p_fa.tolist()}


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Adaptive s-norm (AS-norm): each side of a trial is normalised by the mean and spread of its `top_k`
    highest cosine scores against a cohort of training-speaker embeddings (stored in the export)."""

    embeddings: np.ndarray  # [speakers, dim], unit length
    top_k: int = COHORT_TOP_K

    def stats(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each row's top-k cohort scores."""
        scores = l2_normalize(x) @ self.embeddings.T
        k = min(self.top_k, scores.shape[1])
        top = -np.sort(-scores, axis=1)[:, :k]
        return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6)

    def normalize(self, scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """s-norm of raw scores[i, j] between rows of `a` and rows of `b`."""
        ma, sa = self.stats(a)
        mb, sb = self.stats(b)
        return 0.5 * ((scores - ma[:, None]) / sa[:, None] + (scores - mb[None, :]) / sb[None, :])


def score_matrix(a: np.ndarray, b: np.ndarray, cohort: Optional[Cohort] = None) -> np.ndarray:
    """Cosine scores between the rows of `a` and `b`, s-normalised against `cohort` when given."""
    raw = l2_normalize(a) @ l2_normalize(b).T
    return cohort.normalize(raw, a, b) if cohort is not None else raw


def evaluate_trials(embeddings: np.ndarray, speakers: Sequence, recordings: Sequence,
                    cohort: Optional[Cohort] = None, p_target: float = P_TARGET) -> Dict:
    """EER, minDCF and their thresholds, the trial counts and the DET curve over every pair of chunks."""
    target, nontarget = trial_masks(speakers, recordings)
    n = len(speakers)
    i, j = np.triu_indices(n, 1)
    scores = score_matrix(embeddings, embeddings, cohort)[i, j]
    tgt, non = scores[target], scores[nontarget]
    eer = eer_from_scores(tgt, non)
    dcf = min_dcf(tgt, non, p_target)
    ident = threshold_at_false_alarm(tgt, non)
    return {"eer": float(eer["eer"]), "eer_threshold": float(eer["threshold"]), "min_dcf": dcf["min_dcf"],
            "min_dcf_threshold": dcf["threshold"], "p_target": p_target,
            "identification_threshold": ident["threshold"], "identification_false_alarm": ident["false_alarm"],
            "identification_miss": ident["miss"],
            "num_target_trials": int(tgt.size), "num_nontarget_trials": int(non.size),
            "num_chunks": int(n), "num_speakers": int(len(set(np.asarray(speakers).tolist()))),
            "score_normalization": "as-norm" if cohort is not None else "none",
            "det": det_points(tgt, non)}


def probit(p: np.ndarray) -> np.ndarray:
    """The normal deviate of probabilities (the DET plot's axes), clipped away from 0 and 1."""
    from statistics import NormalDist

    nd = NormalDist()
    return np.array([nd.inv_cdf(min(max(float(v), 1e-4), 1 - 1e-4)) for v in np.ravel(p)])


def det_png(curves: Dict[str, Dict[str, list]], path_or_file) -> None:
    """DET curves (miss against false-alarm rate on normal-deviate axes) as a PNG."""
    from matplotlib.figure import Figure

    ticks = [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
    fig = Figure(figsize=(4.8, 4.8))
    ax = fig.subplots()
    for name, det in curves.items():
        ax.plot(probit(det["p_fa"]), probit(det["p_miss"]), label=name)
    ax.set_xticks(probit(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(probit(ticks), [f"{t:g}" for t in ticks])
    lim = probit([0.0005, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, linestyle=":", color="grey", linewidth=0.8)
    ax.set_xlabel("false-alarm rate")
    ax.set_ylabel("miss rate")
    ax.set_title("DET curve (3-second chunks)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.savefig(path_or_file, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})


def calibrated_threshold(result: Dict, rule: str = "eer") -> float:
    """A decision threshold stored in the export: at the EER (verification, the default), at minDCF, or at
    IDENTIFICATION_FALSE_ALARM ("identification")."""
    value = {"eer": result["eer_threshold"], "min_dcf": result["min_dcf_threshold"],
             "identification": result.get("identification_threshold", float("nan"))}[rule]
    return float(value) if math.isfinite(value) else 0.5
