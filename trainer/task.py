"""Train a speaker classifier on a dataset folder and export a model that takes raw 16 kHz audio.

  python -m pipelines.preprocess --dataset data/ds          # tf.Transform statistics + vocabulary (once)
  python -m trainer.task --dataset data/ds --job-dir runs/r1 [--architecture spectrogram_cnn|fft_conv1d]
  On Vertex AI: --job-dir gs://bucket/runs/r1 (AIP_MODEL_DIR, if set, receives the export).

Writes under --job-dir: checkpoints/ (best weights), backup/ (resume state, removed when training
ends), logs/ (TensorBoard), history.csv, metrics.json, report.md, report.html (trainer.job_page), confusion.png
(det.png for open set), export/ (SavedModel + TFLite).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

from pipelines.paths import is_remote, join
from pipelines import arguments, logs, process_lifecycle
from trainer.summaries import tensorboard_command

log = logging.getLogger(__name__)


MIN_STEPS = 50
# trainer.model's MODELS and EMBEDDERS, named here so that --help and argument errors need no TensorFlow
ARCHITECTURES = ("fft_conv1d", "spectrogram_cnn", "tdnn")


class UsageError(Exception):
    pass


# defaults that depend on the dataset: closed set (split by recording) / open set (split by speaker)
MODE_DEFAULTS = {
    "closed_set": {"model": "spectrogram_cnn", "embedding_dim": 128, "epochs": 60, "patience": 5,
                   "batch_size": 64, "width": 0.5, "crop_segments": 1, "min_crop_seconds": 1.0,
                   "speed_perturb": False, "cmn": False},
    "open_set": {"model": "spectrogram_cnn", "embedding_dim": 128, "epochs": 20, "patience": 20, "batch_size": 64,
                 "width": 0.5, "crop_segments": 1, "min_crop_seconds": 1.0, "speed_perturb": False, "cmn": False},
}


def build_parser() -> argparse.ArgumentParser:
    def pair(text: str):
        try:
            low, high = (float(x) for x in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"two numbers like 0,15, got {text!r}") from None
        return low, high

    def speeds(text: str):
        try:
            values = tuple(float(x) for x in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"speed factors like 1,0.9,1.1, got {text!r}") from None
        if not values or values[0] != 1.0 or any(not 0.5 <= v <= 2.0 for v in values) or len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"distinct factors in 0.5-2, starting with 1, got {text!r}")
        return values

    def defaults(key: str) -> str:
        return f"closed set {MODE_DEFAULTS['closed_set'][key]}, open set {MODE_DEFAULTS['open_set'][key]}"

    p = arguments.command_parser(
        "python -m trainer.task", __doc__,
        epilog="\n\n".join(__doc__.strip("\n").split("\n\n")[1:]) + "\n\n"
               "A dataset split by recording trains a closed-set classifier of its speakers; one split by speaker\n"
               "(build_dataset --split-by speaker) trains an open-set speaker embedder, judged by verification on\n"
               "speakers it never saw. Defaults marked 'closed set / open set' follow the dataset.")
    arguments.flag(p, "--dataset", "--data-dir", dest="data_dir", required=True, metavar="DATASET",
                   help="dataset folder from pipelines.build_dataset (+ preprocess)")
    p.add_argument("--job-dir", required=True, help="where checkpoints, logs, metrics and the export go (local or gs://)")
    arguments.flag(p, "--architecture", "--model", dest="model", choices=ARCHITECTURES, default=None,
                   help="spectrogram_cnn: 2D CNN on log_mel; fft_conv1d: the Keras example's convnet on fft (closed "
                        f"set only); tdnn: an x-vector TDNN on log_mel (open set only) (default: {defaults('model')})")
    p.add_argument("--epochs", type=int, default=None, help=f"maximum epochs (default: {defaults('epochs')})")
    p.add_argument("--batch-size", type=int, default=None, help=f"(default: {defaults('batch_size')})")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--patience", type=int, default=None,
                   help=f"early stopping on validation loss (open set: validation EER) (default: {defaults('patience')})")
    p.add_argument("--embedding-dim", type=int, default=None, help=f"(default: {defaults('embedding_dim')})")
    p.add_argument("--width", type=float, default=None,
                   help=f"scales the filter counts; 1.0 = the published sizes (default: {defaults('width')})")
    p.add_argument("--noise-dir", default=None, help="background noise audio mixed into the waveform while training")
    p.add_argument("--noise-scale", type=float, default=0.5,
                   help="closed set: as the Keras example's SCALE (default: %(default)s)")
    p.add_argument("--noise-snr", type=pair, default=(0.0, 15.0),
                   help="open set: signal-to-noise ratio range in dB for --noise-dir (default: 0,15)")
    p.add_argument("--no-augment", action="store_true", help="no noise, SpecAugment or speed perturbation")
    p.add_argument("--no-spec-augment", action="store_true", help="no SpecAugment masking")
    p.add_argument("--margin", type=float, default=0.2,
                   help="open set: additive angular margin (radians) of the softmax (default: %(default)s)")
    p.add_argument("--scale", type=float, default=30.0, help="open set: scale of the margin softmax (default: %(default)s)")
    p.add_argument("--crop-segments", type=int, default=None,
                   help="open set: segments of one speaker joined into a training crop (default: 1)")
    p.add_argument("--min-crop-seconds", type=float, default=None,
                   help="open set: crops are cut to a random length from this to the full crop (default: 1)")
    p.add_argument("--speed-perturb", action=argparse.BooleanOptionalAction, default=None,
                   help="open set: train speed copies of each speaker, each speed as a speaker of its own "
                        "(default: off)")
    p.add_argument("--speeds", type=speeds, default=(1.0, 0.9, 1.1),
                   help="open set: the speed factors of the copies, 1 first (default: 1,0.9,1.1)")
    p.add_argument("--cmn", action=argparse.BooleanOptionalAction, default=None,
                   help="open set: subtract each utterance's mean log-mel (default: off)")
    p.add_argument("--babble", type=float, default=0.0,
                   help="open set: share of crops with another speaker of the batch mixed in at 13-20 dB "
                        "(default: %(default)s)")
    p.add_argument("--reverb", type=float, default=0.0,
                   help="open set: share of crops put in a synthetic room (default: %(default)s)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap on steps per epoch (default: the whole train split)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this many minutes")
    p.add_argument("--seed", type=int, default=42, help="(default: %(default)s)")
    p.add_argument("--export-dir", default=None, help="default: $AIP_MODEL_DIR, else JOB_DIR/export")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite conversion")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs, and TensorFlow's own start-up messages")
    return p


def get_args(argv: Optional[Sequence[str]] = None):
    """The checked arguments: the checks without TensorFlow first (check_args), then those reading the dataset."""
    p = build_parser()
    args = p.parse_args(argv)
    logs.setup(args.verbose)  # before TensorFlow: its loggers are then set quiet (unless --verbose)
    try:
        check_args(args)
        process_lifecycle.quiet_tensorflow(args.verbose)
        process_lifecycle.import_tensorflow(lean=False)
        validate(args)
    except UsageError as exc:
        p.error(str(exc))
    return args


def check_args(args) -> None:
    """What can be checked before TensorFlow is imported: local folders and numbers."""
    for option, path in (("--dataset", args.data_dir), ("--noise-dir", args.noise_dir)):
        problem = arguments.local_path_problem(option, path)
        if problem:
            raise UsageError(problem + ("; build one with python -m pipelines.build_dataset"
                                        if option == "--dataset" and "no such" in problem else ""))
    if not is_remote(args.data_dir) and not os.path.isfile(os.path.join(args.data_dir, "dataset.json")):
        raise UsageError(f"--dataset {args.data_dir} has no dataset.json (not a dataset built by "
                         "python -m pipelines.build_dataset)")
    for name in ("epochs", "batch_size", "patience", "embedding_dim", "crop_segments", "steps_per_epoch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.learning_rate <= 0 or (args.width is not None and args.width <= 0) or args.noise_scale < 0 \
            or args.scale <= 0 or args.margin < 0:
        raise UsageError("--learning-rate, --width and --scale must be > 0, --noise-scale and --margin >= 0")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError("--max-minutes must be > 0")
    if not 0 <= args.babble <= 1 or not 0 <= args.reverb <= 1:
        raise UsageError("--babble and --reverb are shares from 0 to 1")


def validate(args) -> None:
    """Everything that can fail before training starts; messages name the fix."""
    import tensorflow as tf

    from pipelines import schema
    from pipelines.dataset_meta import DatasetError, DatasetMeta
    from pipelines.transform_output import load_transform
    from trainer.augment import NoiseError, load_noise

    if not tf.io.gfile.exists(args.data_dir):
        raise UsageError(f"--dataset {args.data_dir}: no such folder; build one with python -m pipelines.build_dataset")
    try:
        meta = DatasetMeta.read(args.data_dir)
    except DatasetError as exc:
        raise UsageError(f"--dataset {exc}") from None
    args.meta = meta
    args.mode = "open_set" if meta.split_by == "speaker" else "closed_set"
    for key, value in MODE_DEFAULTS[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("epochs", "batch_size", "patience", "embedding_dim", "crop_segments"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.learning_rate <= 0 or args.width <= 0 or args.noise_scale < 0 or args.scale <= 0 or args.margin < 0:
        raise UsageError("--learning-rate, --width and --scale must be > 0, --noise-scale and --margin >= 0")
    if args.mode == "open_set":
        validate_open_set(args, meta)
    else:
        validate_closed_set(args, meta)
    try:
        args.tft_output = load_transform(args.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    args.export_dir = args.export_dir or os.environ.get("AIP_MODEL_DIR") or join(args.job_dir, "export")
    if tf.io.gfile.exists(args.export_dir) and tf.io.gfile.listdir(args.export_dir) and not args.overwrite:
        raise UsageError(f"export folder {args.export_dir} already exists; pass --overwrite, another --job-dir "
                         "or --export-dir")
    args.noise_bank = None
    if args.noise_dir and not args.no_augment:
        if not tf.io.gfile.exists(args.noise_dir):
            raise UsageError(f"--noise-dir {args.noise_dir}: no such folder")
        if args.mode == "closed_set" and schema.AUDIO in meta.features:
            try:
                args.noise_bank = load_noise(args.noise_dir, meta.feature_config.segment_samples)
            except NoiseError as exc:
                raise UsageError(str(exc)) from None


def validate_open_set(args, meta) -> None:
    from pipelines import schema
    from trainer.model import EMBEDDERS

    if args.model not in EMBEDDERS:
        raise UsageError(f"{args.data_dir} is split by speaker (open set): --architecture must be one of "
                         f"{', '.join(EMBEDDERS)}")
    missing = [f for f in (schema.AUDIO, schema.LOG_MEL) if f not in meta.features]
    if missing:
        raise UsageError(f"open-set training needs the {' and '.join(missing)} feature(s), but {args.data_dir} was "
                         f"built with --features {','.join(meta.features)}; rebuild with --features audio,log_mel")
    for split in ("train", "validation"):
        if meta.examples(split) == 0:
            raise UsageError(f"{args.data_dir} has no {split} examples; rebuild with more speakers or a {split} "
                             "fraction > 0")
    args.feature = schema.LOG_MEL


def validate_closed_set(args, meta) -> None:
    from trainer.model import FEATURE_OF

    if args.model not in FEATURE_OF:
        raise UsageError(f"--architecture {args.model} is for open-set training: build the dataset with --split-by speaker, "
                         f"or choose one of {', '.join(FEATURE_OF)}")
    feature = FEATURE_OF[args.model]
    if feature not in meta.features:
        raise UsageError(f"--architecture {args.model} needs the '{feature}' feature but {args.data_dir} was built with "
                         f"--features {','.join(meta.features)}; rebuild with --features including {feature} "
                         f"or choose the other --architecture")
    if meta.examples("train") == 0:
        raise UsageError(f"{args.data_dir} has no train examples; build it from more audio")
    if meta.examples("validation") == 0:
        raise UsageError(f"{args.data_dir} has no validation examples; rebuild with a validation fraction > 0")
    args.feature = feature


def strategy_from_environment():
    """MultiWorkerMirroredStrategy under a multi-worker TF_CONFIG, MirroredStrategy on several GPUs,
    else the default (one CPU or GPU)."""
    import tensorflow as tf

    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class TimeLimit:
    """Keras callback factory: stop after --max-minutes (checked at batch ends)."""

    @staticmethod
    def make(minutes: float):
        import tf_keras as keras

        class TimeLimit(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.time()

            def on_train_batch_end(self, batch, logs=None):
                if time.time() - self.start > minutes * 60:
                    self.model.stop_training = True

        return TimeLimit()


def fit_resumable(net, train_ds, args, steps: int, monitor: str, validation_data=None, first=(), extra=(),
                  extra_callbacks: Optional[List] = None):
    """Train `net` with what every training run here needs: resume after an interruption (JOB/backup, removed
    once training finished), the best weights by `monitor` (lower is better) kept in JOB/checkpoints/best and
    loaded at the end, early stopping after `args.patience` epochs, TensorBoard and CSV logs, `--max-minutes`.
    `first` callbacks run before these (they may add `monitor` to the logs), `extra` after them.
    Returns (history, training seconds)."""
    import time

    import tensorflow as tf
    import tf_keras as keras

    from pipelines.paths import join
    from trainer.progress import TrainingProgress

    job = args.job_dir
    best = join(job, "checkpoints", "best")
    callbacks = [
        *first,
        keras.callbacks.BackupAndRestore(backup_dir=join(job, "backup")),  # resume after interruption
        keras.callbacks.ModelCheckpoint(best, monitor=monitor, mode="min", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=args.patience),
        *extra,
        keras.callbacks.TensorBoard(log_dir=join(job, "logs"), write_graph=False, profile_batch=0),
        keras.callbacks.CSVLogger(join(job, "history.csv"), append=True) if "://" not in job else
        keras.callbacks.Callback(),
    ]
    if args.max_minutes:
        callbacks.append(TimeLimit.make(args.max_minutes))
    callbacks += extra_callbacks or []
    callbacks.append(TrainingProgress.make(args.epochs, steps))  # after the callbacks that add to the logs
    tf.io.gfile.makedirs(join(job, "checkpoints"))
    start = time.time()
    history = net.fit(train_ds, validation_data=validation_data, epochs=args.epochs, steps_per_epoch=steps,
                      callbacks=callbacks, verbose=0)
    seconds = time.time() - start
    backup = join(job, "backup")
    if tf.io.gfile.exists(backup) and not tf.io.gfile.listdir(backup):
        tf.io.gfile.rmtree(backup)  # training finished: nothing left to resume from
    net.load_weights(best)
    return history, seconds


def train_and_evaluate(args, extra_callbacks: Optional[List] = None) -> Dict:
    """Closed-set classifier or open-set embedder, as the dataset's split says (args.mode)."""
    if args.mode == "open_set":
        from trainer import open_set

        return open_set.train_and_evaluate(args, extra_callbacks)
    return train_closed_set(args, extra_callbacks)


def train_closed_set(args, extra_callbacks: Optional[List] = None) -> Dict:
    import tensorflow as tf
    import tf_keras as keras

    from pipelines import schema
    from pipelines.transform_output import speaker_vocabulary
    from trainer import data, evaluate, export, job_page, model as model_lib, summaries

    keras.utils.set_random_seed(args.seed)
    meta = args.meta
    tft_output = args.tft_output
    vocab = speaker_vocabulary(tft_output)
    feature = args.feature
    tft_layer = tft_output.transform_features_layer()

    noise = args.noise_bank
    if args.no_augment:
        log.info("augmentation off (--no-augment)")
    elif args.noise_dir:
        if noise is None:
            log.warning("noise augmentation needs the 'audio' feature, which %s lacks: no noise mixed", args.data_dir)
        else:
            log.info("noise augmentation: %d pieces from %s, scale %g", len(noise), args.noise_dir, args.noise_scale)
    else:
        log.info("no --noise-dir: training without background noise (none is invented); SpecAugment %s",
                 "off" if args.no_spec_augment else "on")
    spec_aug = not (args.no_augment or args.no_spec_augment)

    files = {s: meta.files(args.data_dir, s) for s in schema.SPLITS}
    train_ds = data.make_dataset(files["train"], meta, feature, tft_layer, args.batch_size, True, noise,
                                 args.noise_scale, spec_aug, args.seed)
    val_ds = data.make_dataset(files["validation"], meta, feature, tft_layer, args.batch_size, False)
    # an "epoch" is at least MIN_STEPS steps, so that small datasets still train (and BatchNorm statistics
    # settle) between validations; large ones use one pass over the train split
    steps = args.steps_per_epoch or max(MIN_STEPS, -(-meta.examples("train") // args.batch_size))
    train_ds = train_ds.repeat()

    input_shape = meta.feature_shapes()[feature]
    strategy = strategy_from_environment()
    with strategy.scope():
        net = model_lib.build(args.model, input_shape, len(vocab), args.embedding_dim, args.width)
        net.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                    loss={"probabilities": keras.losses.SparseCategoricalCrossentropy()},
                    metrics={"probabilities": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]})
    job = args.job_dir
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, args.patience // 2),
                                                min_lr=args.learning_rate / 32)
    history, train_seconds = fit_resumable(net, train_ds, args, steps, "val_loss", validation_data=val_ds,
                                           extra=[plateau], extra_callbacks=extra_callbacks)

    # evaluation on the test split (validation when test is empty): classification and verification
    test_name = "test" if meta.examples("test") else "validation"
    test_ds = data.make_dataset(files[test_name], meta, feature, tft_layer, 256, False, keep_meta=True)
    result = evaluate.evaluate_split(net, test_ds, vocab, schema.SPEAKER)
    metrics = {test_name: result.metrics,
               "training": {"model": args.model, "feature": feature, "epochs_run": len(history.history["loss"]),
                            "seconds": round(train_seconds, 1), "best_val_loss": float(min(history.history["val_loss"])),
                            "noise_augmentation": noise is not None, "spec_augment": spec_aug,
                            "data_dir": args.data_dir, "seed": args.seed}}
    saved = evaluate.write_evaluation(job, dict(result.metrics, num_labels=len(vocab)), result.confusion, vocab)
    confusion = io.BytesIO()
    evaluate.confusion_png(result.confusion, vocab, confusion)
    summaries.write_test_summaries(job, test_name, result.metrics, confusion.getvalue(), "confusion",
                                   result.embeddings, result.speakers, result.recordings or None)
    saved["training"] = metrics["training"]
    with tf.io.gfile.GFile(join(job, "metrics.json"), "w") as f:
        f.write(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    job_page.write_page(job)  # report.html: metrics, per-speaker table, confusion, curves
    export.export_model(net, tft_output, feature, vocab, meta, args.export_dir,
                        tflite=not args.no_tflite, overwrite=args.overwrite,
                        names=data.read_speaker_names(args.data_dir),
                        threshold=result.metrics["verification"].get("threshold"))
    metrics["export_dir"] = args.export_dir
    m = result.metrics
    log.info("%s accuracy %.4f, macro F1 %.4f, EER %.4f; export: %s", test_name, m["accuracy"], m["macro_f1"],
             m["eer"], args.export_dir)
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_args(argv)
    metrics = train_and_evaluate(args)
    split = "test" if "test" in metrics else "validation"
    m = metrics[split]
    if args.mode == "open_set":
        print(f"{split} (speakers never trained on): EER {m['eer']:.4f}  minDCF {m['min_dcf']:.4f}  "
              f"({m['num_target_trials']} target / {m['num_nontarget_trials']} non-target trials of 3-s chunks, "
              f"{m['num_speakers']} speakers, score normalisation {m['score_normalization']})")
    else:
        print(f"{split}: accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  EER {m['eer']:.4f}  "
              f"({m['num_examples']} segments, {m['num_speakers']} speakers)")
    print(f"metrics: {os.path.join(args.job_dir, 'metrics.json')}\nexport:  {metrics['export_dir']}")
    print(f"TensorBoard (training curves, {split} metrics, confusion or DET image, embedding projector): "
          f"{tensorboard_command(args.job_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
