"""Training-time augmentation: background noise mixed into the waveform (the Keras example's recipe)
and SpecAugment-style masking of the normalised features. TensorFlow ops on batches, plus the loader
of the noise bank (decoded with the builder's own audio code).
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional

import numpy as np
import tensorflow as tf

from pipelines import schema
from pipelines.paths import join

log = logging.getLogger(__name__)

NOISE_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")


class NoiseError(ValueError):
    """A --noise-dir that gives no usable noise; the message names the fix."""


def load_noise(noise_dir: str, segment_samples: int, max_pieces: int = 4000) -> np.ndarray:
    """Background noise cut into segment-length float32 pieces [K, segment_samples], decoded with the
    pipeline's own audio code (any format, any rate -> 16 kHz mono)."""
    from pipelines.decode import AudioError, DecodeInfo, iter_decoded, local_copy

    files = sorted(p for p in tf.io.gfile.glob(join(noise_dir, "*")) if not os.path.basename(p).startswith(".")
                   and os.path.splitext(p)[1].lower() in NOISE_EXTENSIONS)
    pieces: List[np.ndarray] = []
    for path in files:
        info = DecodeInfo()
        with local_copy(path, lambda p: tf.io.gfile.GFile(p, "rb")) as local:
            try:
                chunks = list(iter_decoded(local, info))
            except AudioError as exc:
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
        raise NoiseError(f"--noise-dir {noise_dir}: no decodable audio of at least one segment "
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
