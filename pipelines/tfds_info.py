"""TensorFlow Datasets metadata for a dataset folder, so `tfds.builder_from_directory(OUT)` reads our shards.

TFDS's read-only builder needs two files beside the shards: `dataset_info.json` (the `DatasetInfo` proto as
JSON: name, version, file format, per split the examples of every shard and a `filepathTemplate`, here
`{SPLIT}-{SHARD_X_OF_Y}.tfrecord`, our shard names) and `features.json` (a `FeaturesDict`: text for the
string keys, scalar tensors for the numbers, and `Tensor(shape, dtype, encoding="bytes")` for the raw
little-endian features, which TFDS decodes with `tf.io.decode_raw` exactly as `pipelines.schema` does, except
that `audio` stays int16). Both are written by hand from `DatasetMeta`, so neither the builder nor its
workers import tensorflow_datasets; the format is the one tensorflow_datasets 4.9
(`core/dataset_info.py`, `core/features/tensor_feature.py`, `core/naming.py`) writes and reads.

Gzipped shards (`--gzip`) get no TFDS metadata: TFDS opens TFRecord files without compression.
"""
from __future__ import annotations

import json
import re
from typing import Dict, Sequence, Tuple

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta

VERSION = "1.0.0"
FILEPATH_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}" + schema.TFRECORD_SUFFIX  # = schema.shard_name without .gz
_TEXT = "tensorflow_datasets.core.features.text_feature.Text"
_TENSOR = "tensorflow_datasets.core.features.tensor_feature.Tensor"
_DICT = "tensorflow_datasets.core.features.features_dict.FeaturesDict"


def tfds_name(name: str) -> str:
    """A TFDS dataset name (snake_case, starting with a letter) for a folder name."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return cleaned if cleaned[:1].isalpha() else f"speakers_{cleaned}".rstrip("_")


def _tensor(dtype: str, shape: Sequence[int], encoding: str = "none") -> Dict:
    dims = {"dimensions": [str(int(d)) for d in shape]} if shape else {}
    return {"pythonClassName": _TENSOR, "tensor": {"dtype": dtype, "encoding": encoding, "shape": dims}}


def features_json(meta: DatasetMeta) -> Dict:
    """features.json: every key of our examples (pipelines.schema) as a TFDS feature."""
    features: Dict[str, Dict] = {k: {"pythonClassName": _TEXT, "text": {}} for k in schema.STRING_KEYS}
    features.update({k: _tensor("float32", ()) for k in schema.FLOAT_KEYS})
    features.update({k: _tensor("int64", ()) for k in schema.INT_KEYS})
    for name, shape in meta.feature_shapes().items():
        features[name] = _tensor("int16" if name == schema.AUDIO else "float32", shape, "bytes")
    return {"pythonClassName": _DICT, "featuresDict": {"features": dict(sorted(features.items()))}}


def dataset_info_json(meta: DatasetMeta) -> Dict:
    """dataset_info.json: name, version and, per non-empty split, the examples of each shard (an empty split is
    left out, so TFDS calls it unknown instead of failing when it is read)."""
    splits = []
    for split in schema.SPLITS:
        info = meta.split(split)
        if not info.files or not info.examples:  # TFDS refuses to read an empty split ("corresponds to no data")
            continue
        lengths: Tuple[int, ...] = info.shard_examples or ((info.examples,) if info.shards == 1 else ())
        if len(lengths) != len(info.files):
            raise ValueError(f"{schema.DATASET_JSON} holds no per-shard example counts for {split}")
        splits.append({"name": split, "filepathTemplate": FILEPATH_TEMPLATE, "numBytes": str(info.bytes_uncompressed),
                       "shardLengths": [str(n) for n in lengths]})
    return {"name": tfds_name(meta.name or "speakers"), "version": VERSION, "fileFormat": "tfrecord",
            "description": (f"Speaker-recognition segments of {meta.feature_config.segment_samples} samples at "
                            f"{schema.SAMPLE_RATE} Hz written by python -m pipelines.build_dataset; labels: "
                            f"{schema.SPEAKERS_TSV}, or pipelines.dataset.load"),
            "moduleName": "pipelines.tfds_info", "splits": splits}


def tfds_files(meta: DatasetMeta) -> Dict[str, bytes]:
    """{file name: bytes} of the TFDS metadata for a dataset; {} for gzipped shards, which TFDS cannot read."""
    if meta.gzip:
        return {}
    return {schema.TFDS_INFO_JSON: _dump(dataset_info_json(meta)), schema.TFDS_FEATURES_JSON: _dump(features_json(meta))}


def _dump(data: Dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
