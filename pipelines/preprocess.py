"""tf.Transform preprocessing: per-frequency-bin normalization and the speaker vocabulary, from TRAIN only.

Locally (DirectRunner, the default):
  python -m pipelines.preprocess --dataset data/ds
  python -m pipelines.preprocess --dataset data/ds --direct_num_workers 2 --direct_running_mode multi_processing
On Google Cloud Dataflow (the same job):
  python -m pipelines.preprocess --dataset gs://b/ds --runner DataflowRunner --project P --region R \\
      --temp_location gs://b/tmp --setup_file ./setup.py

Reads the train split's shards listed in DIR/dataset.json (validation and test are never read), parses
the stored float features (`fft`, `spectrogram`, `log_mel`) and `speaker`, runs `tft_beam.AnalyzeDataset`
and writes the standard tf.Transform output folder DIR/transform/ (transform_fn/, transformed_metadata/,
and metadata/ with the raw input schema) plus DIR/transform/preprocess.json, written last as the
completion marker. The trainer loads it with `load_transform(DIR)` and puts `transform_features_layer()`
inside its exported model; the layer accepts the float features alone (no `speaker`) and then returns
only the normalized features.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import sys
import uuid
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipelines import logs
from pipelines import schema
from pipelines.paths import join

log = logging.getLogger("preprocess")

NAMESPACE = "preprocess"
NORMALIZED_FEATURES = (schema.FFT, schema.SPECTROGRAM, schema.LOG_MEL)  # stored as float32 bytes
LABEL = "label"  # output key: index of `speaker` in the vocabulary, -1 when unknown
VOCABULARY = "speaker"  # vocab_filename of the speaker vocabulary
EPSILON = 1e-6  # added to the variance: a constant bin normalizes to 0 instead of dividing by zero
PREPROCESS_JSON = "preprocess.json"
TEMP_NAME = "transform_tmp"  # DIR/transform_tmp unless --temp_location is given
# what a tf.Transform output folder written by this module may hold
_OWN_ENTRIES = {"transform_fn", "transformed_metadata", "metadata", PREPROCESS_JSON, "transform_tmp"}


class UsageError(Exception):
    """A bad flag or input found before any work starts; printed as one line."""


# ---------------------------------------------------------------------------------------------
# Paths (local or gs://)
# ---------------------------------------------------------------------------------------------
def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read()


def _write_bytes(path: str, data: bytes, mime: str = "application/json") -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, mime_type=mime, compression_type="uncompressed") as f:
        f.write(data)


def _listdir(path: str) -> List[str]:
    if "://" not in path:
        return os.listdir(path)
    import tensorflow as tf

    return [n.rstrip("/") for n in tf.io.gfile.listdir(path)]


def _remove_tree(path: str) -> None:
    if "://" not in path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def transform_dir(dataset_dir: str) -> str:
    return join(dataset_dir, schema.TRANSFORM_DIR)


# ---------------------------------------------------------------------------------------------
# Arguments and checks before any work
# ---------------------------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.preprocess", description=__doc__.split("\n\n")[0],
        epilog="Beam pipeline options (--runner, --direct_num_workers, --direct_running_mode, --project, "
               "--region, --temp_location, --setup_file, --sdk_container_image, ...) pass straight through.")
    parser.add_argument("--dataset", required=True,
                        help="dataset folder written by pipelines.build_dataset (local or gs://); "
                             "the output goes to DATASET/transform/")
    args, beam_args = parser.parse_known_args(argv)
    try:
        args.plan = validate(args, beam_args)
    except UsageError as exc:
        parser.error(str(exc))
    return args, beam_args


def validate(args, beam_args: List[str]) -> Dict:
    """Every check that can fail before work starts; returns what the job needs."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines.build_dataset import _unknown_beam_args

    if _unknown_beam_args(beam_args):
        raise UsageError(f"unrecognized arguments: {' '.join(beam_args)}")
    dataset = args.dataset.rstrip("/") or args.dataset
    if "://" not in dataset and not os.path.isdir(dataset):
        raise UsageError(f"--dataset {args.dataset}: no such folder")
    meta_path = join(dataset, schema.DATASET_JSON)
    if not FileSystems.exists(meta_path):
        raise UsageError(f"--dataset {args.dataset}: no {schema.DATASET_JSON} (not a dataset built by "
                         "pipelines.build_dataset)")
    raw = _read_bytes(meta_path)
    try:
        meta = json.loads(raw)
        config, features = schema.read_dataset_config(meta)
        train = meta["splits"]["train"]
        gzip = bool(meta["config"]["gzip"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--dataset {args.dataset}: unreadable {schema.DATASET_JSON} ({exc!r})") from None
    if not train.get("examples") or not train.get("files"):
        raise UsageError(f"--dataset {args.dataset}: the train split has no examples")
    normalized = [f for f in NORMALIZED_FEATURES if f in features]
    if not normalized:
        raise UsageError(f"--dataset {args.dataset}: no float feature to normalize (features: "
                         f"{', '.join(features)}); rebuild with --features including one of "
                         f"{', '.join(NORMALIZED_FEATURES)}")
    out = transform_dir(dataset)
    if "://" not in out and os.path.isfile(out):
        raise UsageError(f"{out} is a file, not a tf.Transform output folder")
    if FileSystems.exists(out):
        foreign = sorted(set(_listdir(out)) - _OWN_ENTRIES)
        if foreign:
            raise UsageError(f"{out} holds files that are not a tf.Transform output ({', '.join(foreign[:3])}); "
                             "move them away")
    shapes = config.shapes()
    return {
        "dataset": dataset, "meta": meta, "config": config, "features": normalized,
        "shapes": {f: tuple(shapes[f]) for f in normalized},
        "train_files": [join(dataset, name) for name in train["files"]],
        "train_examples": int(train["examples"]), "gzip": gzip,
        "dataset_sha256": hashlib.sha256(raw).hexdigest(),
    }


# ---------------------------------------------------------------------------------------------
# Per-example parsing (plain function + thin DoFn)
# ---------------------------------------------------------------------------------------------
def raw_feature_spec(shapes: Mapping[str, Sequence[int]]) -> Dict:
    """The tf.Transform input spec: each float feature at its stored shape, plus `speaker`."""
    import tensorflow as tf

    spec = {name: tf.io.FixedLenFeature(list(shape), tf.float32) for name, shape in shapes.items()}
    spec[schema.SPEAKER] = tf.io.FixedLenFeature([], tf.string)
    return spec


def example_to_instance(serialized: bytes, shapes: Mapping[str, Sequence[int]]) -> Dict[str, object]:
    """One serialized tf.train.Example -> {float feature: float32 array of its shape, speaker: bytes}.

    Raises ValueError for an example that does not match the dataset's schema (a corrupt dataset,
    never a condition to skip silently: the statistics would no longer describe the train split).
    """
    from tensorflow.core.example import example_pb2

    feats = example_pb2.Example.FromString(serialized).features.feature
    ex_id = feats[schema.ID].bytes_list.value[0].decode("utf-8", "replace") if schema.ID in feats else "?"
    out: Dict[str, object] = {}
    for name, shape in shapes.items():
        values = feats[name].bytes_list.value if name in feats else []
        expected = int(np.prod(shape))
        if len(values) != 1 or len(values[0]) != 4 * expected:
            raise ValueError(f"example {ex_id}: feature {name} does not hold {expected} float32 values "
                             f"of shape {list(shape)}")
        out[name] = np.frombuffer(values[0], dtype="<f4").astype(np.float32, copy=False).reshape(shape)
    speaker = feats[schema.SPEAKER].bytes_list.value if schema.SPEAKER in feats else []
    if len(speaker) != 1 or not speaker[0]:
        raise ValueError(f"example {ex_id}: no {schema.SPEAKER}")
    out[schema.SPEAKER] = speaker[0]
    return out


class ParseExampleFn(beam.DoFn):
    """Serialized tf.train.Example -> tf.Transform instance dict; counts what it parsed."""

    def __init__(self, shapes: Mapping[str, Sequence[int]]):
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.parsed = Metrics.counter(NAMESPACE, "train_examples")

    def process(self, serialized: bytes):
        instance = example_to_instance(serialized, self.shapes)
        self.parsed.inc()
        yield instance


class ReadTrainExamples(beam.PTransform):
    """The train split's TFRecord shards -> instance dicts of the float features and speaker."""

    def __init__(self, files: Sequence[str], gzip: bool, shapes: Mapping[str, Sequence[int]]):
        super().__init__()
        self.files, self.gzip, self.shapes = list(files), gzip, dict(shapes)

    def expand(self, pbegin):
        from apache_beam.io.filesystem import CompressionTypes

        compression = CompressionTypes.GZIP if self.gzip else CompressionTypes.UNCOMPRESSED
        return (pbegin
                | "ListShards" >> beam.Create(self.files)
                | "ReadRecords" >> beam.io.ReadAllFromTFRecord(compression_type=compression)
                | "Parse" >> beam.ParDo(ParseExampleFn(self.shapes)))


# ---------------------------------------------------------------------------------------------
# preprocessing_fn
# ---------------------------------------------------------------------------------------------
def normalize_per_bin(x, name: str):
    """z-score with one mean and variance per frequency bin (the last axis).

    [B, F] (fft): statistics over the batch axis. [B, T, F] (spectrogram, log_mel): batch and time
    are pooled (the analyzers see [B*T, F]) and the statistics broadcast back over time.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    bins = x.shape[-1]
    flat = tf.reshape(x, [-1, bins]) if x.shape.rank > 2 else x
    mean = tft.mean(flat, reduce_instance_dims=False, name=f"{name}_mean")
    var = tft.var(flat, reduce_instance_dims=False, name=f"{name}_var")
    return (x - mean) / tf.sqrt(var + EPSILON)


def preprocessing_fn(inputs: Mapping, features: Sequence[str]) -> Dict:
    """Normalized float features (same keys and shapes) and `label` = the speaker's vocabulary index.

    Each output depends only on its own input, so at serving time the float features can be fed
    without `speaker` (the TF2 transform layer then returns only the computable outputs).
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    outputs = {name: normalize_per_bin(tf.cast(inputs[name], tf.float32), name) for name in features}
    outputs[LABEL] = tft.compute_and_apply_vocabulary(inputs[schema.SPEAKER], vocab_filename=VOCABULARY,
                                                      default_value=-1)
    return outputs


def make_preprocessing_fn(features: Sequence[str], config: Optional[schema.FeatureConfig] = None):
    """The preprocessing_fn for a dataset holding `features` (only the float ones are used).

    A functools.partial of a module-level function, so it pickles and imports on any worker.
    `config` is accepted for symmetry with the rest of the code; shapes come from the input spec.
    """
    del config
    normalized = tuple(f for f in NORMALIZED_FEATURES if f in features)
    if not normalized:
        raise ValueError(f"no float feature to normalize among {list(features)}")
    return functools.partial(preprocessing_fn, features=normalized)


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def build_pipeline(p, plan: Dict, output: str):
    """Read train -> AnalyzeDataset -> WriteTransformFn. Call inside a tft_beam.Context."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    metadata = tft.DatasetMetadata.from_feature_spec(raw_feature_spec(plan["shapes"]))
    instances = p | "ReadTrainExamples" >> ReadTrainExamples(plan["train_files"], plan["gzip"], plan["shapes"])
    transform_fn = ((instances, metadata)
                    | "AnalyzeDataset" >> tft_beam.AnalyzeDataset(make_preprocessing_fn(plan["features"])))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output)
    # the raw input schema, as TFX's Transform writes it: TFTransformOutput.raw_feature_spec() reads it
    _ = metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(
        join(output, tft.TFTransformOutput.RAW_METADATA_DIR), p)


def _temp_dir(dataset: str, options) -> str:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    base = options.view_as(GoogleCloudOptions).temp_location
    if base:
        return join(base, f"preprocess-{uuid.uuid4().hex[:12]}")
    return join(dataset, TEMP_NAME)


def _counter(result, name: str) -> Optional[int]:
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))["counters"]
    if not found:
        return None
    values = [c.committed if c.committed is not None else c.attempted for c in found]
    return int(sum(v for v in values if v is not None))


def run(argv: Optional[Sequence[str]] = None) -> Dict:
    """Parse, validate, run the Beam + tf.Transform job; returns the preprocess.json contents."""
    args, beam_args = parse_args(argv)  # before the heavy imports: bad input fails in a second

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    plan = args.plan
    dataset = plan["dataset"]
    output = transform_dir(dataset)
    marker = join(output, PREPROCESS_JSON)
    if FileSystems.exists(marker):  # preprocess.json marks a complete output: not while rewriting it
        FileSystems.delete([marker])
    options = PipelineOptions(beam_args)
    temp = _temp_dir(dataset, options)
    log.info("analyzing %d train examples of %s: %s", plan["train_examples"], dataset, ", ".join(plan["features"]))
    try:
        p = beam.Pipeline(options=options)
        with tft_beam.Context(temp_dir=temp):
            build_pipeline(p, plan, output)
        result = p.run()
        result.wait_until_finish()
    finally:
        _remove_tree(temp)
    analyzed = _counter(result, "train_examples")
    if analyzed is not None and analyzed != plan["train_examples"]:
        raise RuntimeError(f"read {analyzed} train examples but {schema.DATASET_JSON} lists "
                           f"{plan['train_examples']}: the shards do not match the dataset")

    tft_output = tft.TFTransformOutput(output)
    vocab_size = tft_output.vocabulary_size_by_name(VOCABULARY)
    from pipelines.report import code_version

    info = {
        "code_version": code_version(),
        "tensorflow_transform_version": tft.__version__,
        "dataset": plan["meta"].get("name", os.path.basename(dataset)),
        "dataset_json_sha256": plan["dataset_sha256"],
        "statistics_source": ("train split only: normalization statistics and the speaker vocabulary were "
                              "computed from the train split's shards; validation and test were not read"),
        "split": "train",
        "train_files": list(plan["meta"]["splits"]["train"]["files"]),
        "train_examples": analyzed if analyzed is not None else plan["train_examples"],
        "normalized_features": list(plan["features"]),
        "feature_shapes": {f: list(plan["shapes"][f]) for f in plan["features"]},
        "normalization": {
            f: {"formula": f"(x - mean) / sqrt(var + {EPSILON:g})", "per": "frequency bin (last axis)",
                "pooled_axes": ["batch"] if len(plan["shapes"][f]) == 1 else ["batch", "time"],
                "statistics_shape": [plan["shapes"][f][-1]]}
            for f in plan["features"]},
        "epsilon": EPSILON,
        "label": {"input": schema.SPEAKER, "output": LABEL, "vocabulary": VOCABULARY,
                  "vocabulary_size": vocab_size, "unknown_speaker": -1,
                  "order": "decreasing train frequency, ties in reverse byte order (schema.label_order)"},
        "outputs": {**{f: {"dtype": "float32", "shape": list(plan["shapes"][f])} for f in plan["features"]},
                    LABEL: {"dtype": "int64", "shape": []}},
        "serving": (f"{schema.SPEAKER} is optional: transform_features_layer() given only float features "
                    f"returns only their normalized outputs (no {LABEL})"),
    }
    _write_bytes(marker, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return info


# ---------------------------------------------------------------------------------------------
# For the trainer
# ---------------------------------------------------------------------------------------------
def load_transform(dataset_dir: str, check: bool = True):
    """The dataset's tf.Transform output (`tft.TFTransformOutput`).

    With `check`, refuses an output that is incomplete or was computed from another version of
    the dataset (dataset.json changed since), so statistics never silently go stale.
    """
    import tensorflow_transform as tft
    from apache_beam.io.filesystems import FileSystems

    out = transform_dir(dataset_dir.rstrip("/") or dataset_dir)
    marker = join(out, PREPROCESS_JSON)
    if not FileSystems.exists(marker):
        raise FileNotFoundError(f"{out}: no complete tf.Transform output; run "
                                f"python -m pipelines.preprocess --dataset {dataset_dir}")
    if check:
        meta_path = join(dataset_dir, schema.DATASET_JSON)
        info = json.loads(_read_bytes(marker))
        if FileSystems.exists(meta_path) and \
                hashlib.sha256(_read_bytes(meta_path)).hexdigest() != info.get("dataset_json_sha256"):
            raise ValueError(f"{out} was computed from a different {schema.DATASET_JSON}; rerun "
                             f"python -m pipelines.preprocess --dataset {dataset_dir}")
    return tft.TFTransformOutput(out)


def speaker_vocabulary(tft_output) -> List[str]:
    """Speaker keys in label order: entry i is the speaker whose `label` is i."""
    return [v.decode("utf-8") for v in tft_output.vocabulary_by_name(VOCABULARY)]


def normalization_statistics(tft_output, feature: str) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, var) per frequency bin of `feature`, float64 [bins], recovered from the transform graph.

    The statistics live only as constants inside transform_fn; probing the layer (an affine map per
    bin) recovers them to float32 precision. For inspection and tests, not needed for training.
    """
    import tensorflow as tf

    shape = tuple(tft_output.transformed_feature_spec()[feature].shape)  # outputs keep the input shape
    layer = tft_output.transform_features_layer()

    def apply(per_bin: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        x = np.broadcast_to(per_bin.astype(np.float32), shape)
        z = layer({feature: tf.constant(x[None])})[feature].numpy()[0]
        return x.reshape(-1, shape[-1])[0].astype(np.float64), z.reshape(-1, shape[-1])[0].astype(np.float64)

    bins = shape[-1]
    _, z0 = apply(np.zeros(bins))
    _, z1 = apply(np.ones(bins))
    std = 1.0 / (z1 - z0)
    mean = -z0 * std
    # refine around the mean, where the outputs are small and float32 rounding is negligible
    xa, za = apply(mean)
    xb, zb = apply(mean + std)
    std = (xb - xa) / (zb - za)
    mean = xa - za * std
    return mean, np.maximum(std ** 2 - EPSILON, 0.0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logs.setup()
    for noisy in ("apache_beam", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    info = run(argv)
    print(f"wrote {schema.TRANSFORM_DIR}/ for {info['dataset']}: normalized {', '.join(info['normalized_features'])} "
          f"from {info['train_examples']} train examples; {info['label']['vocabulary_size']} speakers in the "
          "vocabulary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
