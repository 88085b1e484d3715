"""Model architectures (no file access). Both end in an L2-normalised speaker embedding and a softmax.

tf_keras (Keras 2) rather than Keras 3: tf.Transform's `transform_features_layer()` is a tf_keras
model, and the export puts both in one SavedModel.
"""
from __future__ import annotations

from typing import Tuple

import tensorflow as tf
import tf_keras as keras

MODELS = ("fft_conv1d", "spectrogram_cnn")
FEATURE_OF = {"fft_conv1d": "fft", "spectrogram_cnn": "log_mel"}
EMBEDDING = "embedding"
PROBABILITIES = "probabilities"


class L2Normalize(keras.layers.Layer):
    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1)


class Scale(keras.layers.Layer):
    """A fixed scale on the unit-length embedding before the classifier (as NormFace), so the softmax can
    be confident while the classifier works on the same geometry that cosine scoring uses."""

    def __init__(self, scale: float = 16.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _head(x, num_classes: int, embedding_dim: int):
    """Dense -> L2-normalised embedding -> scaled -> softmax over speakers."""
    x = keras.layers.Dense(embedding_dim, name="embedding_dense")(x)
    emb = L2Normalize(name=EMBEDDING)(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name=PROBABILITIES)(Scale()(emb))
    return out, emb


def _residual_block(x, filters: int, conv_num: int, name: str):
    """The residual block of the Keras speaker-recognition example."""
    s = keras.layers.Conv1D(filters, 1, padding="same", name=f"{name}_skip")(x)
    for i in range(conv_num - 1):
        x = keras.layers.Conv1D(filters, 3, padding="same", name=f"{name}_conv{i}")(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv1D(filters, 3, padding="same", name=f"{name}_conv{conv_num - 1}")(x)
    x = keras.layers.Add()([x, s])
    x = keras.layers.Activation("relu")(x)
    return keras.layers.MaxPool1D(pool_size=2, strides=2)(x)


def fft_conv1d(input_shape: Tuple[int, ...], num_classes: int, embedding_dim: int = 128,
               width: float = 1.0) -> keras.Model:
    """The Keras example's residual 1D convnet on the |FFT| (input [N/2]); its 128-unit dense layer
    becomes the L2-normalised embedding that feeds the softmax. `width` scales the filter counts
    (1.0 = the example)."""
    inputs = keras.Input(shape=input_shape, name="fft")
    x = keras.layers.Reshape((input_shape[0], 1))(inputs)
    for i, (filters, convs) in enumerate(((16, 2), (32, 2), (64, 3), (128, 3), (128, 3))):
        x = _residual_block(x, max(4, int(filters * width)), convs, f"res{i}")
    x = keras.layers.AveragePooling1D(pool_size=3, strides=3)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(max(16, int(256 * width)), activation="relu")(x)
    out, emb = _head(x, num_classes, embedding_dim)
    return keras.Model(inputs, {PROBABILITIES: out, EMBEDDING: emb}, name="fft_conv1d")


def spectrogram_cnn(input_shape: Tuple[int, ...], num_classes: int, embedding_dim: int = 128,
                    width: float = 1.0, dropout: float = 0.2) -> keras.Model:
    """A small VGG-style 2D CNN on log-mel frames [time, mels] with global pooling (any length)."""
    inputs = keras.Input(shape=input_shape, name="log_mel")
    x = keras.layers.Reshape((*input_shape, 1))(inputs)
    for i, filters in enumerate((32, 64, 128, 128)):
        f = max(4, int(filters * width))
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}a")(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}b")(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        if i < 3:
            x = keras.layers.MaxPool2D(pool_size=2, padding="same")(x)
    # mean and max over time and frequency: robust to segment length
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)])
    x = keras.layers.Dropout(dropout)(x)
    out, emb = _head(x, num_classes, embedding_dim)
    return keras.Model(inputs, {PROBABILITIES: out, EMBEDDING: emb}, name="spectrogram_cnn")


def build(name: str, input_shape: Tuple[int, ...], num_classes: int, embedding_dim: int = 128,
          width: float = 1.0) -> keras.Model:
    if name == "fft_conv1d":
        return fft_conv1d(input_shape, num_classes, embedding_dim, width)
    if name == "spectrogram_cnn":
        return spectrogram_cnn(input_shape, num_classes, embedding_dim, width)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
