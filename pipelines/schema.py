"""The segment-example contract (builder -> preprocess, trainer): feature keys, shapes, file names.

Example keys, splits and the dataset folder's file names live here and nowhere else (the manifest
contract is pipelines.manifest, dataset.json is pipelines.dataset_meta). No Beam and no TensorFlow at
import time; `feature_spec()` and `parse_example()` import TensorFlow lazily.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, Mapping, Tuple

SAMPLE_RATE = 16000  # Hz, every stored waveform
SAMPLE_WIDTH = 2  # bytes: int16 PCM

# ---------------------------------------------------------------------------------------------
# Segment examples (pipeline -> trainer)
# ---------------------------------------------------------------------------------------------
ID = "id"
SPEAKER = "speaker"
SPEAKER_NAME = "speaker_name"
RECORDING = "recording"
GROUP = "group"
SOURCE = "source"
LICENSE = "license"
LANGUAGE = "language"
START_S = "start_s"  # start of the segment in the recording's speech-only timeline
SOURCE_START_S = "source_start_s"  # where its first sample lies in the original file
NUM_VALID_SAMPLES = "num_valid_samples"  # < segment length only for a zero-padded last piece
SAMPLE_RATE_KEY = "sample_rate"

AUDIO = "audio"  # int16 little-endian PCM bytes, 16 kHz mono
FFT = "fft"  # float32 bytes, |FFT| positive half, as the Keras speaker-recognition example
SPECTROGRAM = "spectrogram"  # float32 bytes, STFT magnitude [frames, bins]
LOG_MEL = "log_mel"  # float32 bytes, log mel spectrogram [frames, mels]

FEATURES = (AUDIO, FFT, SPECTROGRAM, LOG_MEL)
DEFAULT_FEATURES = (AUDIO, FFT, LOG_MEL)
STRING_KEYS = (ID, SPEAKER, SPEAKER_NAME, RECORDING, GROUP, SOURCE, LICENSE, LANGUAGE)
FLOAT_KEYS = (START_S, SOURCE_START_S)
INT_KEYS = (SAMPLE_RATE_KEY, NUM_VALID_SAMPLES)

# ---------------------------------------------------------------------------------------------
# Dataset folder
# ---------------------------------------------------------------------------------------------
SPLITS = ("train", "validation", "test")
SPLIT_BY = ("recording", "speaker", "segment")
DATASET_JSON = "dataset.json"
SPEAKERS_TSV = "speakers.tsv"
AUDIT_JSONL = "audit.jsonl"  # the acoustic audit: one line per analysed recording (pipelines.audit)
CARD_MD = "README.md"  # the dataset card (pipelines.card)
SOURCES_TSV = "sources.tsv"  # attribution per recording (pipelines.card)
MANIFEST_JSONL = "manifest.jsonl"  # the manifest the build read: a copy, or the one derived from --audio-dir
REPORT_DIR = "report"
ERRORS_DIR = "errors"
TRANSFORM_DIR = "transform"
RECORDINGS_JSONL = "recordings.jsonl"  # one summary per recording with segments (source path, durations, split)
TFDS_INFO_JSON = "dataset_info.json"  # TensorFlow Datasets' metadata (pipelines.tfds_info), plain shards only
TFDS_FEATURES_JSON = "features.json"
TEMP_DIR = ".tmp"
TFRECORD_SUFFIX = ".tfrecord"
GZIP_SUFFIX = ".gz"


def shard_name(split: str, index: int, count: int, gzip: bool = False) -> str:
    """`train-00003-of-00016.tfrecord[.gz]`, the TFDS naming."""
    return f"{split}-{index:05d}-of-{count:05d}{TFRECORD_SUFFIX}{GZIP_SUFFIX if gzip else ''}"


SHARD_RE = re.compile(r"^(train|validation|test)-(\d{5})-of-(\d{5})\.tfrecord(\.gz)?$")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How features are computed; recorded in dataset.json and reused by the trainer's export."""

    segment_samples: int
    frame_length: int = 400  # 25 ms at 16 kHz
    frame_step: int = 160  # 10 ms
    fft_length: int = 512
    num_mel_bins: int = 64
    mel_lower_hz: float = 20.0
    mel_upper_hz: float = 7600.0
    log_offset: float = 1e-6

    @property
    def num_frames(self) -> int:
        if self.segment_samples < self.frame_length:
            return 0
        return 1 + (self.segment_samples - self.frame_length) // self.frame_step

    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Shape of each feature of one example (audio as samples)."""
        return {
            AUDIO: (self.segment_samples,),
            FFT: (self.segment_samples // 2,),
            SPECTROGRAM: (self.num_frames, self.fft_length // 2 + 1),
            LOG_MEL: (self.num_frames, self.num_mel_bins),
        }

    def bytes_per_example(self, features) -> int:
        """Approximate serialized size, for choosing a shard count from a target shard size."""
        shapes = self.shapes()
        total = 300  # ids, names, provenance
        for name in features:
            n = 1
            for d in shapes[name]:
                n *= d
            total += n * (SAMPLE_WIDTH if name == AUDIO else 4) + 8
        return total

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> "FeatureConfig":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def feature_spec(features) -> dict:
    """`tf.io.parse_example` spec for a dataset holding `features` (stored as raw bytes)."""
    import tensorflow as tf

    spec = {k: tf.io.FixedLenFeature([], tf.string, default_value="") for k in STRING_KEYS}
    spec.update({k: tf.io.FixedLenFeature([], tf.float32) for k in FLOAT_KEYS})
    spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in INT_KEYS})
    for name in features:
        spec[name] = tf.io.FixedLenFeature([], tf.string)
    return spec


def decode_features(parsed: dict, config: FeatureConfig, features) -> dict:
    """Turn the raw-bytes features of parsed examples (scalar or batched) into shaped tensors.

    `audio` becomes float32 in [-1, 1), the same scale the features were computed from.
    """
    import tensorflow as tf

    out = dict(parsed)
    shapes = config.shapes()
    for name in features:
        raw = parsed[name]
        batch_shape = tf.shape(raw)
        if name == AUDIO:
            values = tf.cast(tf.io.decode_raw(raw, tf.int16, little_endian=True), tf.float32) / 32768.0
        else:
            values = tf.io.decode_raw(raw, tf.float32, little_endian=True)
        out[name] = tf.reshape(values, tf.concat([batch_shape, shapes[name]], axis=0))
    return out


def parse_example(serialized, config: FeatureConfig, features) -> dict:
    """Parse serialized `tf.train.Example`s (a scalar or a batch) into shaped feature tensors."""
    import tensorflow as tf

    if serialized.shape.rank == 0:
        parsed = tf.io.parse_single_example(serialized, feature_spec(features))
    else:
        parsed = tf.io.parse_example(serialized, feature_spec(features))
    return decode_features(parsed, config, features)


def label_order(train_segments: Mapping[str, int]) -> list:
    """Speaker keys in label order: the order of tf.Transform's vocabulary over the train split's
    `speaker` values (decreasing frequency, then reverse lexicographic order of the UTF-8 bytes), so
    that speakers.tsv's label column and pipelines.preprocess's vocabulary agree."""
    return [k for k, _ in sorted(train_segments.items(), key=lambda kv: (kv[1], kv[0].encode("utf-8")),
                                 reverse=True)]


def safe_name(text: str, max_len: int = 80) -> str:
    """A file-name-safe form of a web- or user-supplied name: never a path, never empty."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:max_len]
    return cleaned or "x"


