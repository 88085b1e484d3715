"""trainer.verification: trial selection, minDCF against brute force, s-norm, the DET curve."""
from __future__ import annotations

import io

import numpy as np
import pytest

from trainer import verification as v


def test_target_trials_come_from_different_recordings_when_a_speaker_has_several():
    speakers = ["a", "a", "a", "b", "b", "c"]
    recordings = ["a1", "a1", "a2", "b1", "b1", "c1"]
    target, nontarget = v.trial_masks(speakers, recordings)
    i, j = np.triu_indices(6, 1)
    pairs = {(int(x), int(y)) for x, y, t in zip(i, j, target) if t}
    # a has two recordings: only cross-recording pairs; b has one: its two chunks pair up
    assert pairs == {(0, 2), (1, 2), (3, 4)}
    assert nontarget.sum() == 15 - 4  # every pair of two speakers; (0, 1), same recording, is neither


def brute_min_dcf(tgt, non, p):
    best = np.inf
    for thr in sorted(set(tgt) | set(non)) + [np.inf]:
        pm = np.mean(np.asarray(tgt) < thr)
        pf = np.mean(np.asarray(non) >= thr)
        best = min(best, p * pm + (1 - p) * pf)
    return best / min(p, 1 - p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_dcf_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    tgt, non = rng.normal(1.0, 1.0, 60), rng.normal(-1.0, 1.0, 900)
    got = v.min_dcf(tgt, non, 0.01)
    assert got["min_dcf"] == pytest.approx(brute_min_dcf(tgt, non, 0.01), abs=1e-12)
    assert 0 <= got["min_dcf"] <= 1
    assert v.min_dcf(np.full(5, 1.0), np.full(50, -1.0))["min_dcf"] == 0.0  # separable: no cost


def test_as_norm_removes_a_per_file_offset():
    rng = np.random.default_rng(0)
    dim, speakers = 16, 8
    centres = rng.standard_normal((speakers, dim))
    cohort = v.Cohort(v.l2_normalize(rng.standard_normal((40, dim))), top_k=10)
    x = np.concatenate([centres[s] + 0.3 * rng.standard_normal((4, dim)) for s in range(speakers)])
    spk = np.repeat(np.arange(speakers), 4)
    raw = v.evaluate_trials(x, spk, [f"r{i}" for i in range(len(spk))])
    normed = v.evaluate_trials(x, spk, [f"r{i}" for i in range(len(spk))], cohort)
    assert normed["score_normalization"] == "as-norm" and raw["score_normalization"] == "none"
    assert raw["num_target_trials"] == normed["num_target_trials"] == speakers * 6
    s = v.score_matrix(x[:3], x[3:6], cohort)
    assert s.shape == (3, 3) and np.isfinite(s).all()


def test_evaluate_trials_reports_eer_dcf_counts_and_det():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((10, 32))
    x = np.concatenate([c + 0.2 * rng.standard_normal((5, 32)) for c in centres])
    spk = np.repeat(np.arange(10), 5)
    r = v.evaluate_trials(x, spk, [f"rec{s}" for s in spk])  # one recording each: chunks pair up
    assert r["eer"] < 0.05 and r["min_dcf"] < 0.5
    assert r["num_target_trials"] == 10 * 10 and r["num_nontarget_trials"] == 50 * 49 // 2 - 100
    assert len(r["det"]["p_fa"]) == len(r["det"]["p_miss"]) > 10
    buf = io.BytesIO()
    v.det_png({"test": r["det"]}, buf)
    assert buf.getvalue()[:4] == b"\x89PNG"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identification_threshold_lets_the_stated_share_of_non_targets_pass(seed):
    rng = np.random.default_rng(seed)
    non = rng.normal(0.0, 1.0, 3001)
    tgt = rng.normal(3.0, 1.0, 400)
    got = v.threshold_at_false_alarm(tgt, non, 0.005)
    passed = int(np.sum(non >= got["threshold"]))
    assert passed == int(np.floor(0.005 * non.size)) == 15  # exactly the allowed number, not one more
    assert got["false_alarm"] == passed / non.size
    assert got["miss"] == np.mean(tgt < got["threshold"])
    assert got["threshold"] > v.eer_from_scores(tgt, non)["threshold"]  # stricter than the EER point
    assert v.threshold_at_false_alarm(tgt, non, 0.0)["false_alarm"] == 0.0
