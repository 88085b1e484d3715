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

import json
import logging
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta
from pipelines.features import compute_features
from pipelines.model_info import MODEL_JSON, ModelInfo  # noqa: F401 (re-exported)
from pipelines.paths import join

log = logging.getLogger(__name__)
TFLITE = "model.tflite"
EMBED_TFLITE = "embed.tflite"
COHORT_NPY = "cohort.npy"  # open set: unit-length mean embeddings of train speakers, for AS-norm


class SpeakerModel(tf.Module):
    def __init__(self, net, tft_layer, feature: str, config: schema.FeatureConfig, vocab: List[str]):
        super().__init__()
        self.net = net
        self.tft_layer = tft_layer
        self.feature = feature
        self.config = config
        self.vocab = tf.constant(vocab)
        spec = tf.TensorSpec([None, config.segment_samples], tf.float32, name="waveform")
        self.serve = tf.function(self._serve, input_signature=[spec], autograph=False)
        self.features = tf.function(self._features, input_signature=[spec], autograph=False)
        self.numeric = tf.function(self._numeric, input_signature=[spec], autograph=False)

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
                 tflite: bool = True, overwrite: bool = False, names: Dict[str, str] = None,
                 threshold: Optional[float] = None) -> str:
    """A closed-set export: `serving_default` (segments -> probabilities, speaker, embedding), `features`,
    `numeric` (TFLite). `threshold` (the cosine score at the test split's EER) lets its embeddings verify
    and identify enrolled speakers too (trainer.enroll, verify, predict --gallery)."""
    import uuid

    if tf.io.gfile.exists(export_dir):
        if not overwrite and tf.io.gfile.listdir(export_dir):
            raise FileExistsError(f"export folder {export_dir} already exists")
        tf.io.gfile.rmtree(export_dir)
    module = SpeakerModel(net, tft_output.transform_features_layer(), feature, meta.feature_config, vocab)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve, "features": module.features, "numeric": module.numeric})
    info = ModelInfo(feature=feature, build_config=meta.config, speakers=tuple(vocab), speaker_names=names or {},
                     dataset=meta.name, code_version=meta.code_version, model_id=uuid.uuid4().hex,
                     embedding_dim=int(net.get_layer("embedding").output_shape[-1]),
                     threshold=None if threshold is None or threshold != threshold else float(threshold))
    with tf.io.gfile.GFile(join(export_dir, MODEL_JSON), "w") as f:
        f.write(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
    if tflite:
        try:
            write_tflite(export_dir)
        except Exception as exc:  # the SavedModel is the product; TFLite is a convenience
            log.warning("TFLite conversion failed: %s", str(exc).splitlines()[0])
    return export_dir


class SpeakerEmbedder(tf.Module):
    """Open set: raw waveform -> speaker embedding, the front end inside the graph."""

    def __init__(self, embedder, margin_layer, front_end, vocab: List[str]):
        super().__init__()
        self.embedder = embedder
        self.centers = margin_layer.w  # the train speakers' directions: probabilities over them
        self.scale = float(margin_layer.scale)
        self.front_end = front_end
        self.vocab = tf.constant(vocab)
        seg = front_end.config.segment_samples
        batch = tf.TensorSpec([None, seg], tf.float32, name="waveform")
        single = tf.TensorSpec([None], tf.float32, name="waveform")
        # autograph=False: plain graph code, and no source read back from disk when the signatures are traced
        self.serve = tf.function(self._serve, input_signature=[batch], autograph=False)
        self.features = tf.function(self._features, input_signature=[batch], autograph=False)
        self.embed = tf.function(self._embed, input_signature=[single], autograph=False)

    def _features(self, waveform):
        return {schema.LOG_MEL: compute_features(waveform, self.front_end.config, [schema.LOG_MEL])[schema.LOG_MEL]}

    def _embedding(self, waveforms):
        return tf.math.l2_normalize(self.embedder(self.front_end(waveforms), training=False), axis=-1)

    def _embed(self, waveform):
        """One embedding of a whole recording of any length (at least one 25 ms frame), pooled in the graph."""
        n = tf.maximum(tf.shape(waveform)[0], self.front_end.config.frame_length)
        padded = tf.pad(waveform, [[0, n - tf.shape(waveform)[0]]])
        return {"embedding": self._embedding(padded[None, :])[0]}

    def _serve(self, waveform):
        emb = self._embedding(waveform)
        centers = self.centers[:, :tf.shape(self.vocab)[0]]  # normal speed: speed copies are classes of their own
        probs = tf.nn.softmax(self.scale * tf.matmul(emb, tf.math.l2_normalize(centers, axis=0)), axis=-1)
        index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"embedding": emb, "probabilities": probs, "speaker_index": index,
                "speaker": tf.gather(self.vocab, index), "confidence": tf.reduce_max(probs, axis=-1)}


def export_embedder(embedder, margin_layer, front_end, vocab: List[str], meta: DatasetMeta, export_dir: str,
                    cohort=None, threshold: Optional[float] = None, tflite: bool = True,
                    overwrite: bool = False, names: Dict[str, str] = None,
                    identification_threshold: Optional[float] = None) -> str:
    """An open-set export: signatures `embed` (one waveform of any length -> one embedding), `serving_default`
    (segments -> embeddings and probabilities over the train speakers) and `features`; ModelInfo with the
    verification threshold and the identification one; the s-norm cohort when it is used."""
    import io
    import uuid

    import numpy as np

    if tf.io.gfile.exists(export_dir):
        if not overwrite and tf.io.gfile.listdir(export_dir):
            raise FileExistsError(f"export folder {export_dir} already exists")
        tf.io.gfile.rmtree(export_dir)
    module = SpeakerEmbedder(embedder, margin_layer, front_end, vocab)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve, "embed": module.embed, "features": module.features})
    info = ModelInfo(feature=schema.LOG_MEL, build_config=meta.config, speakers=tuple(vocab),
                     speaker_names=names or {}, dataset=meta.name, code_version=meta.code_version, kind="open_set",
                     model_id=uuid.uuid4().hex, embedding_dim=int(embedder.output_shape[-1]), threshold=threshold,
                     identification_threshold=identification_threshold,
                     score_normalization="as-norm" if cohort is not None else "none")
    with tf.io.gfile.GFile(join(export_dir, MODEL_JSON), "w") as f:
        f.write(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
    if cohort is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(cohort.embeddings, np.float32))
        with tf.io.gfile.GFile(join(export_dir, COHORT_NPY), "wb") as f:
            f.write(buf.getvalue())
    if tflite:
        try:
            write_tflite(export_dir, "embed", EMBED_TFLITE)
        except Exception as exc:  # the SavedModel is the product; TFLite is a convenience
            log.warning("TFLite conversion failed: %s", str(exc).splitlines()[0])
    return export_dir


def load_cohort(export_dir: str, top_k: Optional[int] = None):
    """The export's s-norm cohort (verification.Cohort), or None when the export does not normalise."""
    import io

    import numpy as np

    from trainer.verification import COHORT_TOP_K, Cohort

    path = join(export_dir, COHORT_NPY)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return Cohort(np.load(io.BytesIO(f.read())), top_k or COHORT_TOP_K)


def write_tflite(export_dir: str, signature: str = "numeric", name: str = TFLITE) -> str:
    """Convert the numeric signature to TFLite (TF select ops allowed for the FFT/STFT)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir, signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = converter.convert()
    path = join(export_dir, name)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def load(export_dir: str) -> Tuple[object, ModelInfo]:
    """(loaded SavedModel, its ModelInfo)."""
    model = tf.saved_model.load(export_dir)
    with tf.io.gfile.GFile(join(export_dir, MODEL_JSON)) as f:
        return model, ModelInfo.from_json(json.load(f))
