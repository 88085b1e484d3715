"""The exported model: raw 16 kHz waveforms in; features, normalisation and the network inside the graph.

Signatures of the SavedModel in EXPORT_DIR:
  serving_default(waveform float32 [batch, segment_samples]) -> probabilities, speaker_index, speaker
      (key), confidence, embedding
  features(waveform) -> the unnormalised feature, exactly as stored in the dataset's shards
Also EXPORT_DIR/speaker_model.json (segment length, feature, speakers with names, the dataset's silence
settings for trainer.predict) and EXPORT_DIR/model.tflite (numeric outputs only: probabilities, embedding).
It needs nothing from the dataset folder.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List

import tensorflow as tf

from pipelines import schema
from pipelines.features import compute_features

log = logging.getLogger("trainer")
MODEL_JSON = "speaker_model.json"
TFLITE = "model.tflite"


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


def export_model(net, tft_output, feature: str, config: schema.FeatureConfig, vocab: List[str], meta: Dict,
                 export_dir: str, tflite: bool = True, overwrite: bool = False, names: Dict[str, str] = None) -> str:
    if tf.io.gfile.exists(export_dir):
        if not overwrite and tf.io.gfile.listdir(export_dir):
            raise FileExistsError(f"export folder {export_dir} already exists")
        tf.io.gfile.rmtree(export_dir)
    module = SpeakerModel(net, tft_output.transform_features_layer(), feature, config, vocab)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve, "features": module.features, "numeric": module.numeric})
    info = {
        "format": 1, "sample_rate": schema.SAMPLE_RATE, "segment_samples": config.segment_samples,
        "segment_seconds": config.segment_samples / schema.SAMPLE_RATE,
        "hop_seconds": meta["config"].get("hop_seconds"), "feature": feature, "feature_config": config.to_json(),
        "speakers": vocab, "speaker_names": names or {},
        "silence": meta["config"].get("silence", {}), "dataset": meta.get("name"),
        "code_version": meta.get("code_version"),
    }
    with tf.io.gfile.GFile(os.path.join(export_dir, MODEL_JSON) if "://" not in export_dir
                           else export_dir.rstrip("/") + "/" + MODEL_JSON, "w") as f:
        f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
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
    path = os.path.join(export_dir, TFLITE) if "://" not in export_dir else export_dir.rstrip("/") + "/" + TFLITE
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def load(export_dir: str):
    """(loaded SavedModel, speaker_model.json contents)."""
    model = tf.saved_model.load(export_dir)
    path = os.path.join(export_dir, MODEL_JSON) if "://" not in export_dir else export_dir.rstrip("/") + "/" + MODEL_JSON
    with tf.io.gfile.GFile(path) as f:
        return model, json.load(f)
