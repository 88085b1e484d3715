"""The one definition of every feature (ARCHITECTURE.md, principles), in TensorFlow, on batches.

The dataset builder calls `compute_features` on batches of segments; the trainer's exported model
calls the same functions inside its serving graph, so stored and serving-time features agree.
Input waveforms are float32 in [-1, 1), shape [batch, samples].
"""
from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from pipelines.schema import AUDIO, FFT, LOG_MEL, SAMPLE_RATE, SPECTROGRAM, FeatureConfig
from pipelines.process_lifecycle import import_tensorflow

tf = import_tensorflow()  # without its eager Keras import (pipelines.process_lifecycle)


def fft_magnitude(audio: tf.Tensor) -> tf.Tensor:
    """|FFT| of each waveform, first half of the bins, exactly as the Keras speaker-recognition
    example's `audio_to_fft` (which takes `fft[:, : audio.shape[1] // 2]`)."""
    n = tf.shape(audio)[-1]
    # the real FFT's bins 0..n/2 are the complex FFT's first half (the same values, half the work)
    spectrum = tf.signal.rfft(audio)
    return tf.math.abs(spectrum[..., : n // 2])


def stft_magnitude(audio: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """STFT magnitude [batch, frames, fft_length // 2 + 1] (25 ms Hann frames, 10 ms hop by default)."""
    stft = tf.signal.stft(audio, frame_length=config.frame_length, frame_step=config.frame_step,
                          fft_length=config.fft_length, window_fn=tf.signal.hann_window, pad_end=False)
    return tf.math.abs(stft)


def mel_matrix(config: FeatureConfig) -> tf.Tensor:
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=config.num_mel_bins, num_spectrogram_bins=config.fft_length // 2 + 1,
        sample_rate=SAMPLE_RATE, lower_edge_hertz=config.mel_lower_hz, upper_edge_hertz=config.mel_upper_hz)


def log_mel_from_stft(magnitude: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """log(mel power + offset), [batch, frames, num_mel_bins].

    One [frames, bins] x [bins, mels] product per segment (the mel matrix broadcast over the batch),
    not one product of all the batch's frames: a single large product is blocked by its row count, so
    its sums (and the last bit of a value) depended on how many segments shared the batch, and Beam's
    BatchElements sizes batches by timing. This way a segment's values are the same in any batch,
    in the Beam job and in the serving model (tests/pipelines/test_features.py); its cost is in the README."""
    power = tf.square(magnitude)
    mel = mel_matrix(config)
    mel = tf.broadcast_to(mel, tf.concat([tf.shape(power)[:-2], tf.shape(mel)], axis=0))
    return tf.math.log(tf.linalg.matmul(power, mel) + config.log_offset)


def compute_features(audio: tf.Tensor, config: FeatureConfig, names: Iterable[str]) -> Dict[str, tf.Tensor]:
    """Every requested feature of a batch of waveforms; `audio` passes through unchanged."""
    names = tuple(names)
    out: Dict[str, tf.Tensor] = {}
    if AUDIO in names:
        out[AUDIO] = audio
    if FFT in names:
        out[FFT] = fft_magnitude(audio)
    if SPECTROGRAM in names or LOG_MEL in names:
        magnitude = stft_magnitude(audio, config)
        if SPECTROGRAM in names:
            out[SPECTROGRAM] = magnitude
        if LOG_MEL in names:
            out[LOG_MEL] = log_mel_from_stft(magnitude, config)
    return out


class BatchFeaturizer:
    """A traced, fixed-signature feature function for numpy batches of int16 segments.

    Built once per worker (Beam `setup`); one TensorFlow call per batch, not per segment.
    """

    def __init__(self, config: FeatureConfig, names: Iterable[str]):
        self.config = config
        self.names = tuple(n for n in names if n != AUDIO)
        spec = tf.TensorSpec([None, config.segment_samples], tf.int16)

        @tf.function(input_signature=[spec], autograph=False)  # no Python control flow: skip the conversion
        def featurize(pcm):
            audio = tf.cast(pcm, tf.float32) / 32768.0
            return compute_features(audio, config, self.names)

        self._fn = featurize

    def __call__(self, pcm: np.ndarray) -> Dict[str, np.ndarray]:
        if not self.names:
            return {}
        return {k: v.numpy() for k, v in self._fn(tf.constant(pcm, tf.int16)).items()}
