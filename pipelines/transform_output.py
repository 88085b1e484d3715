"""Reading the tf.Transform output that pipelines.preprocess writes to DATASET/transform/.

The trainer's side of the preprocess contract: no Beam (tensorflow_transform's reader alone), so
training never imports the Beam job. `load_transform` refuses an output that is incomplete or was
computed from another version of the dataset, so statistics never silently go stale.
"""
from __future__ import annotations

import hashlib
import json
from typing import List, Tuple

import numpy as np

from pipelines import schema
from pipelines.paths import exists, join, read_bytes, read_text

LABEL = "label"  # output key: index of `speaker` in the vocabulary, -1 when unknown
VOCABULARY = "speaker"  # vocab_filename of the speaker vocabulary
EPSILON = 1e-6  # added to the variance: a constant bin normalizes to 0 instead of dividing by zero
PREPROCESS_JSON = "preprocess.json"  # written last: marks a complete output
NORMALIZED_FEATURES = (schema.FFT, schema.SPECTROGRAM, schema.LOG_MEL)  # stored as float32 bytes


def transform_dir(dataset_dir: str) -> str:
    return join(dataset_dir.rstrip("/") or dataset_dir, schema.TRANSFORM_DIR)


def dataset_json_sha256(dataset_dir: str) -> str:
    """The digest preprocess.json records, tying the statistics to one version of dataset.json."""
    return hashlib.sha256(read_bytes(join(dataset_dir, schema.DATASET_JSON))).hexdigest()


def load_transform(dataset_dir: str, check: bool = True):
    """The dataset's tf.Transform output (`tft.TFTransformOutput`); FileNotFoundError when there is none,
    ValueError (with `check`) when it was computed from a different dataset.json."""
    import tensorflow_transform as tft

    out = transform_dir(dataset_dir)
    marker = join(out, PREPROCESS_JSON)
    if not exists(marker):
        raise FileNotFoundError(f"{out}: no complete tf.Transform output; run "
                                f"python -m pipelines.preprocess --dataset {dataset_dir}")
    if check and exists(join(dataset_dir, schema.DATASET_JSON)):
        info = json.loads(read_text(marker))
        if dataset_json_sha256(dataset_dir) != info.get("dataset_json_sha256"):
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
