"""The exported model: raw 16 kHz waveforms in; features, normalisation and the network inside the graph.

Signatures of the SavedModel in EXPORT_DIR:
  serving_default(waveform float32 [batch, segment_samples]) -> probabilities, speaker_index, speaker
      (key), confidence, embedding
  features(waveform) -> the unnormalised feature, exactly as stored in the dataset's shards
Also EXPORT_DIR/speaker_model.json (`ModelInfo`: feature, speakers with names, and the dataset's
BuildConfig, so that trainer.predict strips silence and cuts segments as the dataset did) and
EXPORT_DIR/model.tflite (numeric outputs only: probabilities, embedding). It needs nothing from the
dataset folder.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Dict, List, Mapping, Tuple

import tensorflow as tf

from pipelines import schema
from pipelines.config import BuildConfig
from pipelines.dataset_meta import DatasetMeta
from pipelines.features import compute_features
from pipelines.paths import join

log = logging.getLogger(__name__)
MODEL_JSON = "speaker_model.json"
TFLITE = "model.tflite"
MODEL_INFO_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """EXPORT_DIR/speaker_model.json: what a user of the export needs besides the graph."""

    feature: str
    build_config: BuildConfig  # the dataset's settings: segment length, hop, silence stripping, features
    speakers: Tuple[str, ...]  # label order: entry i is the speaker of probability i
    speaker_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dataset: str = ""
    code_version: str = ""

    @property
    def feature_config(self) -> schema.FeatureConfig:
        return self.build_config.feature_config

    @property
    def segment_samples(self) -> int:
        return self.build_config.segment_samples

    def name_of(self, speaker: str) -> str:
        return self.speaker_names.get(speaker, "")

    def to_json(self) -> Dict:
        cfg = self.build_config
        return {"format": MODEL_INFO_FORMAT, "sample_rate": schema.SAMPLE_RATE, "feature": self.feature,
                "segment_samples": cfg.segment_samples, "segment_seconds": cfg.segment_samples / schema.SAMPLE_RATE,
                "hop_seconds": cfg.hop_samples / schema.SAMPLE_RATE, "feature_config": self.feature_config.to_json(),
                "build_config": cfg.to_json(), "speakers": list(self.speakers),
                "speaker_names": dict(self.speaker_names), "dataset": self.dataset, "code_version": self.code_version}

    @classmethod
    def from_json(cls, data: Mapping) -> "ModelInfo":
        if "build_config" in data:
            config = BuildConfig.from_json(data["build_config"])
        else:  # format 1: the dataset's segment, hop and silence settings at the top level
            fcfg = schema.FeatureConfig.from_json(data["feature_config"])
            config = BuildConfig.from_json({"segment_seconds": data["segment_samples"] / schema.SAMPLE_RATE,
                                            "hop_seconds": data.get("hop_seconds"),
                                            "silence": data.get("silence") or {},
                                            "num_mel_bins": fcfg.num_mel_bins})
        return cls(feature=data["feature"], build_config=config, speakers=tuple(data["speakers"]),
                   speaker_names=dict(data.get("speaker_names") or {}), dataset=data.get("dataset") or "",
                   code_version=data.get("code_version") or "")


class SpeakerModel(tf.Module):
    def __init__(self, net, tft_layer, feature: str, config: schema.FeatureConfig, vocab: List[str]):
        super().__init__()
        self.net = net
        self.tft_layer = tft_layer
        self.feature = feature
        self.config = config
        self.vocab = tf.constant(vocab)
        spec = tf.TensorSpec([None, config.segment_samples], tf.float32, name="waveform")
        self.serve = tf.function(self._serve, input_signature=[spec])
        self.features = tf.function(self._features, input_signature=[spec])
        self.numeric = tf.function(self._numeric, input_signature=[spec])

    def _features(self, waveform):
        return {self.feature: compute_features(waveform, self.config, [self.feature])[self.feature]}

    def _numeric(self, waveform):
        x = self._features(waveform)[self.feature]
        x = self.tft_layer({self.feature: x})[self.feature]
        out = self.net(x, training=False)
        return {"probabilities": out["probabilities"], "embedding": out["embedding"]}

    def _serve(self, waveform):
        out = self._numeric(waveform)
        probs = out["probabilities"]
        index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"probabilities": probs, "speaker_index": index, "speaker": tf.gather(self.vocab, index),
                "confidence": tf.reduce_max(probs, axis=-1), "embedding": out["embedding"]}


def export_model(net, tft_output, feature: str, vocab: List[str], meta: DatasetMeta, export_dir: str,
                 tflite: bool = True, overwrite: bool = False, names: Dict[str, str] = None) -> str:
    if tf.io.gfile.exists(export_dir):
        if not overwrite and tf.io.gfile.listdir(export_dir):
            raise FileExistsError(f"export folder {export_dir} already exists")
        tf.io.gfile.rmtree(export_dir)
    module = SpeakerModel(net, tft_output.transform_features_layer(), feature, meta.feature_config, vocab)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve, "features": module.features, "numeric": module.numeric})
    info = ModelInfo(feature=feature, build_config=meta.config, speakers=tuple(vocab), speaker_names=names or {},
                     dataset=meta.name, code_version=meta.code_version)
    with tf.io.gfile.GFile(join(export_dir, MODEL_JSON), "w") as f:
        f.write(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
    if tflite:
        try:
            write_tflite(export_dir)
        except Exception as exc:  # the SavedModel is the product; TFLite is a convenience
            log.warning("TFLite conversion failed: %s", str(exc).splitlines()[0])
    return export_dir


def write_tflite(export_dir: str) -> str:
    """Convert the numeric signature to TFLite (TF select ops allowed for the FFT/STFT)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir, signature_keys=["numeric"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = converter.convert()
    path = join(export_dir, TFLITE)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def load(export_dir: str) -> Tuple[object, ModelInfo]:
    """(loaded SavedModel, its ModelInfo)."""
    model = tf.saved_model.load(export_dir)
    with tf.io.gfile.GFile(join(export_dir, MODEL_JSON)) as f:
        return model, ModelInfo.from_json(json.load(f))
