"""benchmarks.open_set: cosine-to-centroid against a linear classifier, on synthetic embeddings."""
from __future__ import annotations

import numpy as np

from benchmarks.open_set import compare, probabilities, softmax_regression


def test_softmax_regression_separates_clusters():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8)) * 3
    y = np.repeat(np.arange(4), 10)
    x = centres[y] + rng.standard_normal((40, 8)) * 0.3
    w = softmax_regression(x, y, 4)
    assert (probabilities(w, x).argmax(axis=1) == y).mean() == 1.0


def test_compare_reports_both_methods_for_each_enrollment_size():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((12, 16))
    speakers = [f"s{i}" for i in range(12) for _ in range(8)]
    emb = np.stack([centres[int(s[1:])] + 0.15 * rng.standard_normal(16) for s in speakers])
    out = compare(emb, speakers, threshold=0.7, shots=(1, 3), draws=4)
    for k in ("1_shot", "3_shot"):
        for m in ("cosine", "linear"):
            assert 0.9 <= out[k][m]["identification_accuracy"] <= 1.0
            assert 0.0 <= out[k][m]["impostors_called_unknown"] <= 1.0
        assert out[k]["enrolled_speakers"] == 6
    assert out["3_shot"]["cosine"]["impostors_called_unknown"] > 0.9  # well-separated voices are rejected


def test_an_enrollment_size_without_enough_speakers_is_skipped_not_a_crash():
    rng = np.random.default_rng(2)
    speakers = [f"s{i}" for i in range(6) for _ in range(3)]  # 3 chunks each: nobody has more than 3
    out = compare(rng.standard_normal((18, 8)), speakers, threshold=0.5, shots=(1, 3), draws=2)
    assert out["1_shot"]["enrolled_speakers"] == 3 and "cosine" in out["1_shot"]
    assert out["3_shot"]["enrolled_speakers"] == 0 and "skipped" in out["3_shot"]
