"""Open-set identification with an export: cosine-to-centroid against a linear classifier on embeddings.

  python -m benchmarks.open_set --export JOB/export --dataset DATASET [--split test] [--output results.json]

Each speaker of the split (never seen in training) gives 3-second chunks; half of the speakers are enrolled
with k = 1, 3, 5 chunks each (repeated over random draws), the other half are impostors. For every
remaining chunk: is the enrolled speaker named (identification accuracy), and at the export's threshold is
an impostor's chunk called unknown. The linear classifier is a softmax regression on the enrollment
embeddings (as the seed project's SVM), its "unknown" a probability below the best threshold found on the
same draws (an upper bound for it); cosine-to-centroid uses the export's identification threshold, as
`trainer.predict --gallery` does, and also reports how many chunks it names correctly at that threshold.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from pipelines import arguments

HERE = os.path.dirname(os.path.abspath(__file__))


def softmax_regression(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, lr: float = 0.5,
                       l2: float = 1e-3) -> np.ndarray:
    """Weights [dim + 1, classes] of a multinomial logistic regression, full-batch gradient descent."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros((xb.shape[1], classes))
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        z = xb @ w
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        w -= lr * (xb.T @ (p - onehot) / len(x) + l2 * w)
    return w


def probabilities(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    z = np.hstack([x, np.ones((len(x), 1))]) @ w
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def compare(emb: np.ndarray, speakers: List[str], threshold: float, shots=(1, 3, 5), draws: int = 20,
            seed: int = 0, cohort=None) -> Dict:
    from trainer.verification import l2_normalize, score_matrix

    rng = np.random.default_rng(seed)
    emb = l2_normalize(emb)
    names = sorted(set(speakers))
    idx = {s: [i for i, x in enumerate(speakers) if x == s] for s in names}
    out = {}
    for k in shots:
        usable = [s for s in names if len(idx[s]) > k]
        if len(usable) < 4:  # two enrolled, two impostors at least
            out[f"{k}_shot"] = {"enrolled_speakers": 0,
                                "skipped": f"{len(usable)} speakers have more than {k} chunks; 4 needed"}
            continue
        acc = {"cosine": [], "linear": []}
        named = []  # cosine: the right enrolled speaker, and above the threshold (what predict --gallery says)
        unknown = {"cosine": [], "linear": []}
        for _ in range(draws):
            order = rng.permutation(usable)
            enrolled, impostors = list(order[: len(order) // 2]), list(order[len(order) // 2:])
            enroll_rows, test_rows, test_labels = [], [], []
            cent = []
            for c, s in enumerate(enrolled):
                pick = rng.permutation(idx[s])
                enroll_rows += [(i, c) for i in pick[:k]]
                test_rows += list(pick[k:])
                test_labels += [c] * (len(pick) - k)
                cent.append(emb[pick[:k]].mean(axis=0))
            imp_rows = [i for s in impostors for i in idx[s]]
            cent = l2_normalize(np.stack(cent))
            s_test = score_matrix(emb[test_rows], cent, cohort)
            s_imp = score_matrix(emb[imp_rows], cent, cohort)
            acc["cosine"].append(float(np.mean(s_test.argmax(axis=1) == np.array(test_labels))))
            named.append(float(np.mean((s_test.argmax(axis=1) == np.array(test_labels))
                                       & (s_test.max(axis=1) >= threshold))))
            unknown["cosine"].append(float(np.mean(s_imp.max(axis=1) < threshold)))
            x = emb[[i for i, _ in enroll_rows]]
            y = np.array([c for _, c in enroll_rows])
            w = softmax_regression(x, y, len(enrolled))
            p_test = probabilities(w, emb[test_rows])
            p_imp = probabilities(w, emb[imp_rows])
            acc["linear"].append(float(np.mean(p_test.argmax(axis=1) == np.array(test_labels))))
            # the linear model's best possible rejection: the probability cut that keeps 95 % of enrolled right
            cut = np.quantile(p_test.max(axis=1), 0.05)
            unknown["linear"].append(float(np.mean(p_imp.max(axis=1) < cut)))
        out[f"{k}_shot"] = {m: {"identification_accuracy": round(float(np.mean(acc[m])), 4),
                                "impostors_called_unknown": round(float(np.mean(unknown[m])), 4)} for m in acc}
        out[f"{k}_shot"]["cosine"]["named_at_threshold"] = round(float(np.mean(named)), 4)
        out[f"{k}_shot"]["enrolled_speakers"] = len(usable) // 2
    return out


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.open_set", __doc__)
    arguments.flag(p, "--export", "--model", dest="model", required=True, metavar="EXPORT",
                   help="an open-set export of trainer.task")
    arguments.flag(p, "--dataset", "--data-dir", dest="data_dir", required=True, metavar="DATASET",
                   help="the speaker-disjoint dataset it was trained on")
    p.add_argument("--split", default="test", choices=("validation", "test"), help="the split whose speakers are used")
    p.add_argument("--draws", type=int, default=20, help="random enrollment draws per size")
    arguments.flag(p, "--output", "--out", dest="out", default=os.path.join(HERE, "results", "open_set.json"),
                   help="the results (JSON)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    import tensorflow as tf

    from pipelines.dataset_meta import DatasetMeta
    from trainer import export
    from trainer.open_set import split_chunks

    model, info = export.load(args.model)
    meta = DatasetMeta.read(args.data_dir)
    chunks = split_chunks(meta.files(args.data_dir, args.split), meta)
    embed = model.signatures["embed"]
    start = time.time()
    emb = np.stack([embed(waveform=tf.constant(w))["embedding"].numpy() for w in chunks.waves])
    cohort = export.load_cohort(args.model) if info.score_normalization == "as-norm" else None
    threshold = info.identification_threshold if info.identification_threshold is not None else info.threshold
    report = {"model": args.model, "dataset": args.data_dir, "split": args.split, "chunks": len(chunks),
              "speakers": len(set(chunks.speakers)), "threshold": threshold,
              "score_normalization": info.score_normalization, "embed_seconds": round(time.time() - start, 1),
              "results": compare(emb, chunks.speakers, threshold, draws=args.draws, cohort=cohort)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    print(f"{'enrollment':<12} {'method':<8} {'identification':>15} {'impostors unknown':>18} "
          f"{'named (cosine)':>15}")
    for k, row in report["results"].items():
        if "skipped" in row:
            print(f"{k:<12} skipped: {row['skipped']}")
            continue
        for m in ("cosine", "linear"):
            named = row[m].get("named_at_threshold")
            print(f"{k:<12} {m:<8} {row[m]['identification_accuracy']:>15.3f} "
                  f"{row[m]['impostors_called_unknown']:>18.3f} {'' if named is None else f'{named:15.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
