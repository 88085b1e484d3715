"""trainer.augment: the Keras example's noise mixing, SpecAugment masks, the noise bank."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.decode import write_wav


def test_noise_is_scaled_as_the_keras_example_says():
    import tensorflow as tf

    from trainer.augment import mix_noise

    audio = np.zeros((64, 100), np.float32)
    audio[:, 0] = 0.5  # max|audio| = 0.5
    bank = np.full((3, 100), 0.25, np.float32)  # max|noise| = 0.25, constant: every piece the same
    added = mix_noise(tf.constant(audio), tf.constant(bank), scale=0.5, seed=1).numpy() - audio
    # added = noise * prop * max|audio| / max|noise| * scale = 0.25 * prop * 2 * 0.5, prop ~ U(0, 1)
    props = added[:, 1] / 0.25
    assert np.allclose(added[:, 1:], added[:, 1:2], atol=1e-7)  # one factor per example
    assert props.min() >= 0 and props.max() <= 1.0 + 1e-6 and props.std() > 0.1  # prop varies per example
    silent = mix_noise(tf.zeros((4, 100)), tf.constant(bank), 0.5).numpy()
    assert not silent.any()  # silence gets no noise: the level follows the audio


def test_spec_augment_zeroes_bands_and_spans_and_keeps_shapes():
    import tensorflow as tf

    from trainer.augment import spec_augment

    x = tf.ones((16, 98, 64))
    y = spec_augment(x, freq_masks=1, freq_width=8, time_masks=1, time_width=10, seed=3).numpy()
    assert y.shape == (16, 98, 64) and set(np.unique(y)) <= {0.0, 1.0}
    freq_zero = (y == 0).all(axis=1).sum(axis=1)  # masked bins per example
    time_zero = (y == 0).all(axis=2).sum(axis=1)  # masked frames per example
    assert freq_zero.max() <= 8 and time_zero.max() <= 10 and (freq_zero + time_zero).sum() > 0
    flat = spec_augment(tf.ones((8, 8000)), seed=3).numpy()  # fft input: frequency masks only
    assert flat.shape == (8, 8000) and ((flat == 0).sum(axis=1) <= 2 * 160).all()


def test_noise_bank_from_a_folder(tmp_path):
    from trainer.augment import NoiseError, load_noise

    rng = np.random.default_rng(0)
    write_wav(tmp_path / "hum.wav", (rng.standard_normal(40000) * 3000).astype(np.int16))
    (tmp_path / "readme.txt").write_text("not audio")
    bank = load_noise(str(tmp_path), 16000)
    assert bank.shape == (2, 16000) and bank.dtype == np.float32 and 0 < np.abs(bank).max() < 1
    with pytest.raises(NoiseError, match="no decodable audio"):
        load_noise(str(tmp_path), 48000)
