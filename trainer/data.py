"""tf.data input pipelines over the dataset shards, with noise and SpecAugment augmentation.

interleave -> shuffle -> batch -> parse (vectorised) -> [noise into the waveform, features recomputed
with pipelines.features] -> tf.Transform layer (normalisation + label) -> [SpecAugment] -> prefetch.
Local and gs:// paths alike (tf.io.gfile).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from pipelines import schema
from pipelines.paths import join
from pipelines.features import compute_features

log = logging.getLogger("trainer")
LABEL = "label"


class DataError(Exception):
    """A dataset that cannot be trained on; the message names the fix."""


def read_meta(data_dir: str) -> Dict:
    path = join(data_dir, schema.DATASET_JSON)
    if not tf.io.gfile.exists(data_dir):
        raise DataError(f"--data-dir {data_dir}: no such folder; build one with python -m pipelines.build_dataset")
    if not tf.io.gfile.exists(path):
        raise DataError(f"--data-dir {data_dir} holds no {schema.DATASET_JSON}; point it at a folder written by "
                        "python -m pipelines.build_dataset")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_speaker_names(data_dir: str) -> Dict[str, str]:
    """speaker key -> human-readable name, from speakers.tsv."""
    path = join(data_dir, schema.SPEAKERS_TSV)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return {r[0]: r[1] for r in rows[1:] if len(r) > 1}


def split_files(data_dir: str, meta: Dict, split: str) -> List[str]:
    return [join(data_dir, name) for name in meta["splits"][split]["files"]]


def load_noise(noise_dir: str, segment_samples: int, max_pieces: int = 4000) -> np.ndarray:
    """Background noise cut into segment-length float32 pieces [K, segment_samples], decoded with the
    pipeline's own audio code (any format, any rate -> 16 kHz mono)."""
    from pipelines import audio as audio_lib

    files = sorted(p for p in tf.io.gfile.glob(join(noise_dir, "*")) if not os.path.basename(p).startswith(".")
                   and os.path.splitext(p)[1].lower() in (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm"))
    pieces: List[np.ndarray] = []
    for path in files:
        info = audio_lib.DecodeInfo()
        with audio_lib.local_copy(path, lambda p: tf.io.gfile.GFile(p, "rb")) as local:
            try:
                chunks = list(audio_lib.iter_decoded(local, info))
            except audio_lib.AudioError as exc:
                log.warning("noise file %s skipped: %s", path, exc)
                continue
        if not chunks:
            continue
        x = np.concatenate(chunks).astype(np.float32) / 32768.0
        n = x.size // segment_samples
        pieces += [x[i * segment_samples:(i + 1) * segment_samples] for i in range(n)]
        if len(pieces) >= max_pieces:
            break
    pieces = [p for p in pieces if np.abs(p).max() > 1e-4][:max_pieces]
    if not pieces:
        raise DataError(f"--noise-dir {noise_dir}: no decodable audio of at least one segment "
                        f"({segment_samples / schema.SAMPLE_RATE:g} s)")
    return np.stack(pieces)


def mix_noise(audio: tf.Tensor, noise_bank: tf.Tensor, scale: float, seed: Optional[int] = None) -> tf.Tensor:
    """The Keras example's augmentation: audio + noise * (prop * max|audio| / max|noise|) * scale,
    prop ~ U(0, 1), one random noise piece per example."""
    batch = tf.shape(audio)[0]
    idx = tf.random.uniform([batch], 0, tf.shape(noise_bank)[0], dtype=tf.int32, seed=seed)
    noise = tf.gather(noise_bank, idx)
    prop = tf.random.uniform([batch], 0.0, 1.0, seed=seed)
    ratio = prop * tf.reduce_max(tf.abs(audio), axis=1) / (tf.reduce_max(tf.abs(noise), axis=1) + 1e-9)
    return audio + noise * (ratio * scale)[:, None]


def spec_augment(x: tf.Tensor, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 10, seed: Optional[int] = None) -> tf.Tensor:
    """SpecAugment-style masking (set to 0, the normalised mean) of random frequency bands and, for
    [batch, time, freq] inputs, random time spans. `fft` inputs [batch, bins] get frequency masks only,
    scaled to their width."""
    shape = tf.shape(x)
    batch = shape[0]
    if x.shape.rank == 2:
        bins = shape[1]
        width = tf.maximum(1, bins // 50)
        mask = _band_mask(batch, bins, freq_masks, width, seed)
        return x * mask
    frames, bins = shape[1], shape[2]
    fmask = _band_mask(batch, bins, freq_masks, tf.minimum(freq_width, bins // 4 + 1), seed)[:, None, :]
    tmask = _band_mask(batch, frames, time_masks, tf.minimum(time_width, frames // 4 + 1), seed)[:, :, None]
    return x * fmask * tmask


def _band_mask(batch, size, count: int, max_width, seed) -> tf.Tensor:
    positions = tf.range(size)[None, :]
    mask = tf.ones([batch, size], tf.float32)
    for _ in range(count):
        width = tf.random.uniform([batch, 1], 0, max_width + 1, dtype=tf.int32, seed=seed)
        room = tf.cast(tf.maximum(1, size - width), tf.float32)
        start = tf.cast(tf.random.uniform([batch, 1], 0.0, 1.0, seed=seed) * room, tf.int32)
        inside = (positions >= start) & (positions < start + width)
        mask *= 1.0 - tf.cast(inside, tf.float32)
    return mask


def make_dataset(files: Sequence[str], meta: Dict, feature: str, tft_layer, batch_size: int, training: bool,
                 noise_bank: Optional[np.ndarray] = None, noise_scale: float = 0.5, augment_spec: bool = False,
                 seed: int = 0, keep_meta: bool = False) -> tf.data.Dataset:
    """(normalised feature [batch, ...], label) batches; with keep_meta, a dict of extra columns too."""
    config, stored = schema.read_dataset_config(meta)
    gzip = meta["config"].get("gzip", False)
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
