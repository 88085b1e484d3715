"""trainer.metrics: classification metrics and the verification EER against brute force and known cases."""
from __future__ import annotations

import math
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from trainer import metrics as ev


# ---------------------------------------------------------------------------------------------- classification
def test_classification_hand_example():
    # confusion (rows true a, b, c): [2 1 0] [0 1 1] [0 0 1]
    m = ev.classification_metrics(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["num_examples"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    ps = m["per_speaker"]
    assert ps["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert ps["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert ps["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_macro_f1_counts_predicted_only_classes_and_skips_absent_ones():
    # c is predicted but has no test segment (F1 = 0, counted); d never appears (not counted)
    m = ev.classification_metrics([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_speaker"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_speaker"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["num_labels"] == 4 and m["num_test_speakers"] == 2


def brute_force_metrics(y_true, y_pred, k):
    conf = [[0] * k for _ in range(k)]
    for t, p in zip(y_true, y_pred):
        conf[t][p] += 1
    f1s, per = [], {}
    for c in range(k):
        tp = conf[c][c]
        fp = sum(conf[r][c] for r in range(k)) - tp
        fn = sum(conf[c]) - tp
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = (prec, rec, f1, tp + fn)
        if tp + fp + fn:
            f1s.append(f1)
    acc = sum(conf[c][c] for c in range(k)) / len(y_true)
    return acc, sum(f1s) / len(f1s), per, conf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k, n = 9, 400
    y_true = rng.integers(0, k - 1, n)                 # the last class never true
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    labels = [f"spk{i}" for i in range(k)]
    m = ev.classification_metrics(y_true, y_pred, labels)
    acc, macro, per, conf = brute_force_metrics(y_true.tolist(), y_pred.tolist(), k)
    assert m["accuracy"] == pytest.approx(acc) and m["macro_f1"] == pytest.approx(macro)
    assert m["confusion"] == conf
    for c in range(k):
        s = m["per_speaker"][labels[c]]
        assert (s["precision"], s["recall"], s["f1"], s["support"]) == pytest.approx(per[c])


def test_classification_rejects_bad_input():
    with pytest.raises(ValueError):
        ev.classification_metrics([0, 3], [0, 1], ["a", "b", "c"])
    with pytest.raises(ValueError):
        ev.classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError):
        ev.classification_metrics([0], [0], ["a", "a"])
    m = ev.classification_metrics(np.array([], int), np.array([], int), ["a"])
    assert m["num_examples"] == 0 and math.isnan(m["accuracy"]) and math.isnan(m["macro_f1"])


# ---------------------------------------------------------------------------------------------- EER
def brute_force_eer(emb, spk):
    """All pairs with Python loops, FAR/FRR counted at every distinct score, crossing interpolated linearly."""
    pairs = []
    for i in range(len(emb)):
        for j in range(i + 1, len(emb)):
            a, b = emb[i], emb[j]
            cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
            pairs.append((cos, spk[i] == spk[j]))
    nt = sum(1 for _, t in pairs if t)
    nn = len(pairs) - nt
    points = []
    for thr in sorted({s for s, _ in pairs}) + [math.inf]:
        far = sum(1 for s, t in pairs if not t and s >= thr) / nn
        frr = sum(1 for s, t in pairs if t and s < thr) / nt
        points.append((far, frr))
    for (far0, frr0), (far1, frr1) in zip(points, points[1:]):
        if frr1 - far1 >= 0:
            d0, d1 = frr0 - far0, frr1 - far1
            a = -d0 / (d1 - d0)
            return far0 + a * (far1 - far0), nt, nn


def clustered(n, speakers, d, spread, seed):
    rng = np.random.default_rng(seed)
    spk = rng.integers(0, speakers, n)
    centres = rng.standard_normal((speakers, d))
    emb = centres[spk] + spread * rng.standard_normal((n, d))
    emb *= rng.uniform(0.2, 5.0, (n, 1))           # not normalized: cosine must not care
    return emb, spk


@pytest.mark.parametrize("seed", [0, 1])
def test_eer_matches_brute_force(seed):
    emb, spk = clustered(45, 4, 6, 1.2, seed)
    want, nt, nn = brute_force_eer(emb.tolist(), spk.tolist())
    exact = ev.equal_error_rate(emb, spk, method="exact")
    assert exact["method"] == "exact" and exact["eer"] == pytest.approx(want, abs=1e-12)
    assert (exact["num_target_pairs"], exact["num_nontarget_pairs"]) == (nt, nn)
    hist = ev.equal_error_rate(emb, spk, method="histogram")
    assert abs(hist["eer"] - want) <= hist["eer_error_bound"] + 1e-9
    assert 0 < want < 0.5


def test_eer_zero_for_separable_speakers():
    rng = np.random.default_rng(3)
    spk = np.repeat(np.arange(6), 7)
    emb = np.eye(16)[spk] * rng.uniform(0.5, 3.0, (spk.size, 1)) + 0.01 * rng.standard_normal((spk.size, 16))
    cos = emb @ emb.T / np.outer(np.linalg.norm(emb, axis=1), np.linalg.norm(emb, axis=1))
    same = spk[:, None] == spk[None, :]
    lowest_target = cos[same].min()
    highest_nontarget = cos[~same].max()
    for method in ("exact", "histogram"):
        r = ev.equal_error_rate(emb, spk, method=method)
        assert r["eer"] == 0.0
        assert highest_nontarget - 1e-4 <= r["threshold"] <= lowest_target + 1e-4
        assert r["num_target_pairs"] == 6 * 21 and r["num_nontarget_pairs"] == 42 * 41 // 2 - 6 * 21


def test_eer_half_when_embeddings_carry_no_speaker_information():
    spk = np.repeat(np.array(["a", "b", "c", "d"]), 10)
    same_vector = np.tile(np.random.default_rng(0).standard_normal(8), (spk.size, 1))
    for method in ("exact", "histogram"):
        assert ev.equal_error_rate(same_vector, spk, method=method)["eer"] == pytest.approx(0.5, abs=1e-12)
    rng = np.random.default_rng(1)
    spk = rng.integers(0, 20, 800)
    noise = rng.standard_normal((800, 32))
    for method in ("exact", "histogram"):
        assert ev.equal_error_rate(noise, spk, method=method)["eer"] == pytest.approx(0.5, abs=0.04)


def test_eer_of_two_gaussians():
    # target ~ N(mu, s), non-target ~ N(0, s): EER = Phi(-d / 2) with d = mu / s, threshold mu / 2
    rng = np.random.default_rng(7)
    mu, s = 0.3, 0.1
    d = mu / s
    want = 0.5 * (1 + math.erf(-d / 2 / math.sqrt(2)))
    tgt = rng.normal(mu, s, 300_000)
    non = rng.normal(0.0, s, 600_000)
    for bins in (None, 40000, 20000):
        r = ev.eer_from_scores(tgt, non, bins=bins)
        assert r["eer"] == pytest.approx(want, abs=0.003), bins
        assert r["threshold"] == pytest.approx(mu / 2, abs=0.005)
        assert r["num_target_pairs"] == tgt.size and r["num_nontarget_pairs"] == non.size


def test_histogram_agrees_with_exact():
    emb, spk = clustered(1500, 30, 16, 2.0, 5)
    names = np.array([f"librivox:{i * 7919 % 1000}" for i in range(30)])[spk]   # strings, unsorted
    exact = ev.equal_error_rate(emb, names, method="exact")
    hist = ev.equal_error_rate(emb, names, method="histogram")
    assert 0.02 < exact["eer"] < 0.4
    assert abs(hist["eer"] - exact["eer"]) < 1e-3
    assert abs(hist["eer"] - exact["eer"]) <= hist["eer_error_bound"] + 1e-6
    assert abs(hist["threshold"] - exact["threshold"]) < 1e-3
    sizes = np.unique(names, return_counts=True)[1]
    assert hist["num_target_pairs"] == exact["num_target_pairs"] == int((sizes * (sizes - 1) // 2).sum())
    assert hist["num_target_pairs"] + hist["num_nontarget_pairs"] == 1500 * 1499 // 2
    # blocks of one row (speaker runs spanning many blocks) count exactly the same pairs
    tiny = ev.equal_error_rate(emb, names, method="histogram", block_elements=1)
    assert tiny["eer"] == hist["eer"] and tiny["num_target_pairs"] == hist["num_target_pairs"]
    assert ev.equal_error_rate(emb, names)["method"] == "exact"        # auto: small n


def test_eer_undefined_without_both_kinds_of_pair():
    r = ev.equal_error_rate(np.eye(3), ["a", "b", "c"])
    assert r["num_target_pairs"] == 0 and r["num_nontarget_pairs"] == 3 and math.isnan(r["eer"])
    r = ev.equal_error_rate(np.eye(3), ["a", "a", "a"], method="histogram")
    assert r["num_target_pairs"] == 3 and math.isnan(r["eer"])
    with pytest.raises(ValueError):
        ev.equal_error_rate(np.eye(3), ["a", "b"])
    with pytest.raises(ValueError):
        ev.equal_error_rate(np.full((2, 2), np.nan), ["a", "b"])


def test_eer_20000_segments_fast_and_bounded_memory():
    n, d = 20000, 64
    emb, spk = clustered(n, 200, d, 1.5, 11)
    emb = emb.astype(np.float32)
    tracemalloc.start()
    t0 = time.perf_counter()
    r = ev.equal_error_rate(emb, spk)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"n={n}: {seconds:.1f} s, peak {peak / 1e6:.0f} MB traced")
    assert r["method"] == "histogram"
    assert seconds < 30
    assert peak < 300e6          # all pair scores as float64 would be 1.6 GB
    assert r["num_target_pairs"] + r["num_nontarget_pairs"] == n * (n - 1) // 2
    assert r["eer_error_bound"] < 1e-3
    # same population, exact on a subset: the EER estimates agree up to sampling noise
    sub = ev.equal_error_rate(emb[:2500], spk[:2500], method="exact")
    assert abs(r["eer"] - sub["eer"]) < 0.02


def test_module_imports_without_tensorflow():
    code = "import sys, trainer.metrics, trainer.evaluate; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


