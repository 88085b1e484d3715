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
completion marker. The trainer reads it with pipelines.transform_output (no Beam) and puts
`transform_features_layer()` inside its exported model; the layer accepts the float features alone (no
`speaker`) and then returns only the normalized features.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import uuid
from typing import Dict, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import code_version, logs, process_lifecycle, schema
from pipelines.dataset_meta import DatasetError, DatasetMeta
from pipelines.options import LogOptions, make_parser
from pipelines.paths import join
from pipelines.transform_output import (EPSILON, LABEL, NORMALIZED_FEATURES, PREPROCESS_JSON, VOCABULARY,
                                        dataset_json_sha256, transform_dir)

log = logging.getLogger(__name__)

NAMESPACE = "preprocess"
TEMP_NAME = "transform_tmp"  # DIR/transform_tmp unless --temp_location is given
# what a tf.Transform output folder written by this module may hold
OWN_ENTRIES = {"transform_fn", "transformed_metadata", "metadata", PREPROCESS_JSON, TEMP_NAME}


class PreprocessOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--dataset", help="dataset folder written by pipelines.build_dataset (local or gs://); "
                                              "the output goes to DATASET/transform/; required")


@dataclasses.dataclass(frozen=True)
class PreprocessPlan:
    """What the job reads and writes, settled before it starts."""

    dataset: str
    meta: DatasetMeta
    features: Tuple[str, ...]  # the float features to normalize
    shapes: Mapping[str, Tuple[int, ...]]
    train_files: Tuple[str, ...]
    dataset_sha256: str

    @property
    def train_examples(self) -> int:
        return self.meta.examples("train")


# ---------------------------------------------------------------------------------------------
# Paths (local or gs://)
# ---------------------------------------------------------------------------------------------
def write_bytes(path: str, data: bytes, mime: str = "application/json") -> None:
    with FileSystems.create(path, mime_type=mime, compression_type="uncompressed") as f:
        f.write(data)


def listdir(path: str):
    if "://" not in path:
        return os.listdir(path)
    import tensorflow as tf

    return [n.rstrip("/") for n in tf.io.gfile.listdir(path)]


def remove_tree(path: str) -> None:
    if "://" not in path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


# ---------------------------------------------------------------------------------------------
# Arguments and checks before any work
# ---------------------------------------------------------------------------------------------
def plan_job(dataset_arg: str) -> PreprocessPlan:
    """Every check that can fail before work starts (ValueError with a one-line reason); the job's plan."""
    dataset = dataset_arg.rstrip("/") or dataset_arg
    if "://" not in dataset and not os.path.isdir(dataset):
        raise ValueError(f"--dataset {dataset_arg}: no such folder")
    if not FileSystems.exists(join(dataset, schema.DATASET_JSON)):
        raise ValueError(f"--dataset {dataset_arg}: no {schema.DATASET_JSON} (not a dataset built by "
                         "pipelines.build_dataset)")
    try:
        meta = DatasetMeta.read(dataset)
    except DatasetError as exc:
        raise ValueError(f"--dataset {dataset_arg}: {exc}") from None
    train = meta.split("train")
    if not train.examples or not train.files:
        raise ValueError(f"--dataset {dataset_arg}: the train split has no examples")
    normalized = tuple(f for f in NORMALIZED_FEATURES if f in meta.features)
    if not normalized:
        raise ValueError(f"--dataset {dataset_arg}: no float feature to normalize (features: "
                         f"{', '.join(meta.features)}); rebuild with --features including one of "
                         f"{', '.join(NORMALIZED_FEATURES)}")
    out = transform_dir(dataset)
    if "://" not in out and os.path.isfile(out):
        raise ValueError(f"{out} is a file, not a tf.Transform output folder")
    if FileSystems.exists(out):
        foreign = sorted(set(listdir(out)) - OWN_ENTRIES)
        if foreign:
            raise ValueError(f"{out} holds files that are not a tf.Transform output ({', '.join(foreign[:3])}); "
                             "move them away")
    shapes = meta.feature_shapes()
    return PreprocessPlan(dataset=dataset, meta=meta, features=normalized,
                          shapes={f: tuple(shapes[f]) for f in normalized},
                          train_files=tuple(meta.files(dataset, "train")),
                          dataset_sha256=dataset_json_sha256(dataset))


def build_parser():
    """The job's argparse parser (its --help): --dataset, then Beam's options."""
    return make_parser("python -m pipelines.preprocess", __doc__, PreprocessOptions)


def parse_args(argv: Optional[Sequence[str]]) -> Tuple[PreprocessPlan, PipelineOptions]:
    """The command line -> (plan, Beam options); a bad flag or dataset exits with a one-line error."""
    parser = build_parser()
    parser.parse_args(argv)
    options = PipelineOptions(list(argv) if argv is not None else None)
    dataset = options.view_as(PreprocessOptions).dataset
    if not dataset:
        parser.error("the following arguments are required: --dataset")
    try:
        plan = plan_job(dataset)
    except ValueError as exc:
        parser.error(str(exc))
    return plan, options


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
def build_pipeline(p, plan: PreprocessPlan, output: str):
    """Read train -> AnalyzeDataset -> WriteTransformFn. Call inside a tft_beam.Context."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    metadata = tft.DatasetMetadata.from_feature_spec(raw_feature_spec(plan.shapes))
    instances = p | "ReadTrainExamples" >> ReadTrainExamples(plan.train_files, plan.meta.gzip, plan.shapes)
    transform_fn = ((instances, metadata)
                    | "AnalyzeDataset" >> tft_beam.AnalyzeDataset(make_preprocessing_fn(plan.features)))
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output)
    # the raw input schema, as TFX's Transform writes it: TFTransformOutput.raw_feature_spec() reads it
    _ = metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(
        join(output, tft.TFTransformOutput.RAW_METADATA_DIR), p)


def temp_dir_for(dataset: str, options) -> str:
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    base = options.view_as(GoogleCloudOptions).temp_location
    if base:
        return join(base, f"preprocess-{uuid.uuid4().hex[:12]}")
    return join(dataset, TEMP_NAME)


def counter_value(result, name: str) -> Optional[int]:
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))["counters"]
    if not found:
        return None
    values = [c.committed if c.committed is not None else c.attempted for c in found]
    return int(sum(v for v in values if v is not None))


def run(argv: Optional[Sequence[str]] = None) -> Dict:
    """Parse, validate, run the Beam + tf.Transform job; returns the preprocess.json contents."""
    plan, options = parse_args(argv)  # before the heavy imports: bad input fails in a second
    verbose = bool(options.view_as(LogOptions).verbose)
    logs.setup(verbose)
    process_lifecycle.quiet_tensorflow(verbose)
    process_lifecycle.import_tensorflow(lean=False)

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    dataset = plan.dataset
    output = transform_dir(dataset)
    marker = join(output, PREPROCESS_JSON)
    if FileSystems.exists(marker):  # preprocess.json marks a complete output: not while rewriting it
        FileSystems.delete([marker])
    temp = temp_dir_for(dataset, options)
    log.info("analyzing %d train examples of %s: %s", plan.train_examples, dataset, ", ".join(plan.features))
    try:
        p = beam.Pipeline(options=options)
        with tft_beam.Context(temp_dir=temp):
            build_pipeline(p, plan, output)
        result = p.run()
        result.wait_until_finish()
    finally:
        remove_tree(temp)
    analyzed = counter_value(result, "train_examples")
    if analyzed is not None and analyzed != plan.train_examples:
        raise RuntimeError(f"read {analyzed} train examples but {schema.DATASET_JSON} lists "
                           f"{plan.train_examples}: the shards do not match the dataset")

    tft_output = tft.TFTransformOutput(output)
    vocab_size = tft_output.vocabulary_size_by_name(VOCABULARY)
    info = {
        "code_version": code_version(),
        "tensorflow_transform_version": tft.__version__,
        "dataset": plan.meta.name or os.path.basename(dataset),
        "dataset_json_sha256": plan.dataset_sha256,
        "statistics_source": ("train split only: normalization statistics and the speaker vocabulary were "
                              "computed from the train split's shards; validation and test were not read"),
        "split": "train",
        "train_files": list(plan.meta.split("train").files),
        "train_examples": analyzed if analyzed is not None else plan.train_examples,
        "normalized_features": list(plan.features),
        "feature_shapes": {f: list(plan.shapes[f]) for f in plan.features},
        "normalization": {
            f: {"formula": f"(x - mean) / sqrt(var + {EPSILON:g})", "per": "frequency bin (last axis)",
                "pooled_axes": ["batch"] if len(plan.shapes[f]) == 1 else ["batch", "time"],
                "statistics_shape": [plan.shapes[f][-1]]}
            for f in plan.features},
        "epsilon": EPSILON,
        "label": {"input": schema.SPEAKER, "output": LABEL, "vocabulary": VOCABULARY,
                  "vocabulary_size": vocab_size, "unknown_speaker": -1,
                  "order": "decreasing train frequency, ties in reverse byte order (schema.label_order)"},
        "outputs": {**{f: {"dtype": "float32", "shape": list(plan.shapes[f])} for f in plan.features},
                    LABEL: {"dtype": "int64", "shape": []}},
        "serving": (f"{schema.SPEAKER} is optional: transform_features_layer() given only float features "
                    f"returns only their normalized outputs (no {LABEL})"),
    }
    write_bytes(marker, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    info = run(argv)
    print(f"wrote {schema.TRANSFORM_DIR}/ for {info['dataset']}: normalized {', '.join(info['normalized_features'])} "
          f"from {info['train_examples']} train examples; {info['label']['vocabulary_size']} speakers in the "
          "vocabulary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
