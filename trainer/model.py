"""Model architectures (no file access). Closed set: two classifiers that end in an L2-normalised speaker
embedding and a softmax. Open set: embedders of variable-length log-mel with statistics pooling, trained
through an additive angular margin softmax.

tf_keras (Keras 2) rather than Keras 3: tf.Transform's `transform_features_layer()` is a tf_keras
model, and the export puts both in one SavedModel.
"""
from __future__ import annotations

import math
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


# ---------------------------------------------------------------------------------------------
# Open set: embedding networks on variable-length log-mel, trained through an angular-margin softmax
# ---------------------------------------------------------------------------------------------
EMBEDDERS = ("spectrogram_cnn", "tdnn")


class StatisticsPooling(keras.layers.Layer):
    """Mean and standard deviation over time of [batch, time, channels] -> [batch, 2 * channels]."""

    def call(self, x):
        mean = tf.reduce_mean(x, axis=1)
        var = tf.reduce_mean(tf.square(x - mean[:, None, :]), axis=1)
        return tf.concat([mean, tf.sqrt(var + 1e-5)], axis=-1)


def _cnn_frames(x, width: float):
    """spectrogram_cnn's conv stages on [batch, time, mels, 1], frequency pooled away stage by stage; returns
    [batch, time / 8, channels * remaining mel bins] frames."""
    for i, filters in enumerate((32, 64, 128, 128)):
        f = max(4, int(filters * width))
        for part in "ab":
            x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}{part}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}{part}")(x)
            x = keras.layers.Activation("relu")(x)
        if i < 3:
            x = keras.layers.MaxPool2D(pool_size=2, padding="same", name=f"pool{i}")(x)
    bins, channels = x.shape[2], x.shape[3]
    return keras.layers.Reshape((-1, bins * channels), name="frames")(x)


def _tdnn_frames(x, width: float):
    """An x-vector TDNN (time-delay layers: 1D convolutions with growing dilation) on [batch, time, mels]."""
    c = max(16, int(512 * width))
    for i, (kernel, dilation, channels) in enumerate(((5, 1, c), (3, 2, c), (3, 3, c), (1, 1, c), (1, 1, 3 * c))):
        x = keras.layers.Conv1D(channels, kernel, dilation_rate=dilation, padding="same", use_bias=False,
                                name=f"tdnn{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"tdnn{i}_bn")(x)
        x = keras.layers.Activation("relu")(x)
    return x


def speaker_embedder(name: str, num_mel_bins: int, embedding_dim: int = 192, width: float = 0.5) -> keras.Model:
    """log-mel frames [batch, any time, mels] -> speaker embedding [batch, embedding_dim] (not normalised:
    scores are cosines), through statistics pooling over time, so any length goes in."""
    inputs = keras.Input(shape=(None, num_mel_bins), name="log_mel")
    if name == "spectrogram_cnn":
        frames = _cnn_frames(keras.layers.Reshape((-1, num_mel_bins, 1))(inputs), width)
    elif name == "tdnn":
        frames = _tdnn_frames(inputs, width)
    else:
        raise ValueError(f"unknown embedder {name!r}; choose from {', '.join(EMBEDDERS)}")
    pooled = StatisticsPooling(name="statistics_pooling")(frames)
    x = keras.layers.Dense(embedding_dim, name="embedding_dense")(pooled)
    emb = keras.layers.BatchNormalization(momentum=0.9, name=EMBEDDING)(x)
    return keras.Model(inputs, emb, name=f"{name}_embedder")


class AngularMarginSoftmax(keras.layers.Layer):
    """Additive angular margin softmax (ArcFace): logits scale * cos(theta + margin) for the true class,
    scale * cos(theta) for the others; without labels (inference), scale * cos(theta) for all."""

    def __init__(self, num_classes: int, margin: float = 0.2, scale: float = 30.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.margin, self.scale = num_classes, margin, scale

    def build(self, input_shape):
        dim = tf.TensorShape(input_shape[0])[-1]  # inputs: (embedding, labels)
        self.w = self.add_weight(name="centers", shape=(int(dim), self.num_classes),
                                 initializer="glorot_uniform", trainable=True)

    def cosine(self, embedding):
        return tf.matmul(tf.math.l2_normalize(embedding, axis=-1), tf.math.l2_normalize(self.w, axis=0))

    def call(self, inputs):
        embedding, labels = inputs
        cos = tf.clip_by_value(self.cosine(embedding), -1.0 + 1e-7, 1.0 - 1e-7)
        onehot = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        theta = tf.acos(cos)
        target = tf.cos(theta + self.margin)
        # keep the target logit monotonic in theta past pi - margin (the usual "easy margin" fix)
        target = tf.where(theta + self.margin < math.pi, target, cos - self.margin * math.sin(self.margin))
        return self.scale * (onehot * target + (1.0 - onehot) * cos)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "margin": self.margin, "scale": self.scale}


def margin_trainer(embedder: keras.Model, num_classes: int, margin: float, scale: float) -> keras.Model:
    """(features, labels) -> margin logits: the training graph around an embedder."""
    features = keras.Input(shape=embedder.input_shape[1:], name="features")
    labels = keras.Input(shape=(), dtype="int64", name="labels")
    logits = AngularMarginSoftmax(num_classes, margin, scale, name="aam_softmax")([embedder(features), labels])
    return keras.Model([features, labels], logits, name="margin_trainer")
