"""Trainer input benchmark: examples per second that tf.data delivers (read, parse, augment, transform,
batch) against examples per second the model trains on, in the same process. The input must not be
the bottleneck (target: input >= 5x the training step).

  python -m benchmarks.trainer_input --dataset demo/dataset         # a dataset with transform/ (preprocess)
  python -m benchmarks.trainer_input                                # builds a demo dataset first

Writes benchmarks/results/trainer_input.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from pipelines import arguments

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(dataset: str, model_name: str, batch_size: int, batches: int, runs: int, noise_dir: str = None,
            width: float = 0.5) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from pipelines.dataset_meta import DatasetMeta
    from pipelines.transform_output import load_transform, speaker_vocabulary
    from trainer import data, model as model_lib
    from trainer.augment import load_noise
    from trainer.model import FEATURE_OF

    meta = DatasetMeta.read(dataset)
    feature = FEATURE_OF[model_name]
    tft_output = load_transform(dataset)
    layer = tft_output.transform_features_layer()
    noise = load_noise(noise_dir, meta.feature_config.segment_samples) if noise_dir else None
    files = meta.files(dataset, "train")
    ds = data.make_dataset(files, meta, feature, layer, batch_size, True, noise, 0.5, True, seed=0).repeat()

    def input_rate() -> float:
        it = iter(ds)
        next(it)  # warm-up: tracing, file opening
        start = time.perf_counter()
        n = 0
        for _ in range(batches):
            x, _y = next(it)
            n += int(x.shape[0])
        return n / (time.perf_counter() - start)

    vocab = speaker_vocabulary(tft_output)
    net = model_lib.build(model_name, meta.feature_shapes()[feature], len(vocab), 128, width)
    net.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss={"probabilities": keras.losses.SparseCategoricalCrossentropy()})
    cached = list(ds.take(4))  # training on in-memory batches measures the step alone

    def train_rate() -> float:
        net.train_on_batch(cached[0][0], cached[0][1])  # warm-up: tracing
        start = time.perf_counter()
        n = 0
        for i in range(batches):
            x, y = cached[i % len(cached)]
            net.train_on_batch(x, y)
            n += int(x.shape[0])
        return n / (time.perf_counter() - start)

    inputs = [input_rate() for _ in range(runs)]
    trains = [train_rate() for _ in range(runs)]
    inp, trn = statistics.median(inputs), statistics.median(trains)
    return {"model": model_name, "feature": feature, "batch_size": batch_size, "batches": batches, "runs": runs,
            "noise_augmentation": noise is not None, "input_examples_per_s": round(inp, 1),
            "train_examples_per_s": round(trn, 1), "input_over_train": round(inp / trn, 2),
            "cores": os.cpu_count(), "tf_version": tf.__version__, "date": time.strftime("%Y-%m-%d")}


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.trainer_input", __doc__)
    p.add_argument("--dataset", help="dataset folder with transform/ (default: build a small demo dataset)")
    arguments.flag(p, "--architecture", "--model", dest="model", default="spectrogram_cnn",
                   choices=("spectrogram_cnn", "fft_conv1d"), help="the trainer's architecture to time")
    p.add_argument("--batch-size", type=int, default=64, help="examples per batch")
    p.add_argument("--batches", type=int, default=30, help="batches per measurement (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="median of this many (default: %(default)s)")
    p.add_argument("--noise-dir", help="measure with noise mixing (features recomputed from the waveform)")
    arguments.flag(p, "--output", "--out", dest="out", default=os.path.join(HERE, "results", "trainer_input.json"),
                   help="the results (JSON)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    dataset = args.dataset
    if not dataset:
        from demos import corpus as demo_corpus
        from pipelines import build_dataset, preprocess

        work = tempfile.mkdtemp(prefix="bench-trainer-input-")
        manifest = demo_corpus.make_corpus(os.path.join(work, "corpus"), 4, 3, 8.0)
        dataset = os.path.join(work, "dataset")
        build_dataset.run(["--manifest", manifest, "--output", dataset])
        preprocess.run(["--dataset", dataset])
    result = measure(dataset, args.model, args.batch_size, args.batches, args.runs, args.noise_dir)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    print(f"{'model':<16} {'batch':>5} {'input ex/s':>11} {'train ex/s':>11} {'input/train':>12}")
    print(f"{result['model']:<16} {result['batch_size']:>5} {result['input_examples_per_s']:>11.1f} "
          f"{result['train_examples_per_s']:>11.1f} {result['input_over_train']:>12.2f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
