"""tf.data input pipelines over the dataset shards (augmentation from trainer.augment).

interleave -> shuffle -> batch -> parse (vectorised) -> [noise into the waveform, features recomputed
with pipelines.features] -> tf.Transform layer (normalisation + label) -> [SpecAugment] -> prefetch.
Local and gs:// paths alike (tf.io.gfile).
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from pipelines import schema
from pipelines.dataset import read_speakers
from pipelines.dataset_meta import DatasetMeta
from pipelines.features import compute_features
from pipelines.transform_output import LABEL
from trainer.augment import mix_noise, spec_augment

log = logging.getLogger(__name__)


def read_speaker_names(data_dir: str) -> Dict[str, str]:
    """speaker key -> human-readable name, from speakers.tsv."""
    return {r.speaker: r.name for r in read_speakers(data_dir)}


def make_dataset(files: Sequence[str], meta: DatasetMeta, feature: str, tft_layer, batch_size: int, training: bool,
                 noise_bank: Optional[np.ndarray] = None, noise_scale: float = 0.5, augment_spec: bool = False,
                 seed: int = 0, keep_meta: bool = False) -> tf.data.Dataset:
    """(normalised feature [batch, ...], label) batches; with keep_meta, a dict of extra columns too."""
    config = meta.feature_config
    gzip = meta.gzip
    use_noise = noise_bank is not None
    parse_features = [feature] if not use_noise else [schema.AUDIO]
    spec = {k: v for k, v in schema.feature_spec(parse_features).items()
            if k in parse_features or k in (schema.SPEAKER, schema.RECORDING, schema.ID)}
    noise = tf.constant(noise_bank) if use_noise else None

    ds = tf.data.Dataset.from_tensor_slices(list(files))
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP" if gzip else ""),
                       cycle_length=min(8, max(1, len(files))), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=not training)
    if training:
        ds = ds.shuffle(8192, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        decoded = schema.decode_features(parsed, config, parse_features)
        if use_noise:
            audio = mix_noise(decoded[schema.AUDIO], noise, noise_scale, seed=None)
            x = compute_features(audio, config, [feature])[feature]
        else:
            x = decoded[feature]
        out = tft_layer({feature: x, schema.SPEAKER: parsed[schema.SPEAKER]})
        x = out[feature]
        if augment_spec:
            x = spec_augment(x)
        extra = {k: parsed[k] for k in (schema.SPEAKER, schema.RECORDING, schema.ID)}
        return x, out[LABEL], extra

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if keep_meta:
        ds = ds.map(lambda x, y, extra: (x, y, extra))
    else:
        ds = ds.map(lambda x, y, extra: (x, {"probabilities": y}))
    return ds.prefetch(tf.data.AUTOTUNE)
