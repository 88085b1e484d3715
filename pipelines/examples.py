"""Segments -> serialized `tf.train.Example`s (the segment-example contract, pipelines.schema).

Plain functions used by the builder's ComputeFeatures stage: a segment is a dict made by the cutter
(`segment_item`), its features come from one batched call of pipelines.features, and each example is
serialized deterministically (map keys sorted), so the same segment always gives the same bytes.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from pipelines import schema
from pipelines.decode import pcm_to_bytes

# the recording's metadata carried into each of its segments
SEGMENT_META = (schema.SPEAKER, schema.SPEAKER_NAME, schema.RECORDING, schema.GROUP, schema.SOURCE,
                schema.LICENSE, schema.LANGUAGE)


def segment_item(record, rec_id: str, seg_id: str, split: str, pcm: np.ndarray, start_s: float,
                 source_start_s: float, valid: int) -> Dict:
    """One cut segment on its way to the feature stage; `record` is its ManifestRecord."""
    item = {k: getattr(record, k) for k in SEGMENT_META}
    item.update({schema.ID: seg_id, "recording_id": rec_id, "split": split, "pcm": pcm, schema.START_S: start_s,
                 schema.SOURCE_START_S: source_start_s, schema.NUM_VALID_SAMPLES: valid})
    return item


def serialize_example(item: Dict, feature_bytes: Dict[str, bytes]) -> bytes:
    """One segment's `tf.train.Example`, serialized deterministically (map keys sorted).

    `item` holds the segment's metadata (`segment_item`); `feature_bytes` each feature's raw
    little-endian bytes (`audio` int16, the others float32)."""
    import tensorflow as tf

    train = tf.train
    feats = {k: train.Feature(bytes_list=train.BytesList(value=[str(item[k]).encode("utf-8")]))
             for k in SEGMENT_META + (schema.ID,)}
    for k in schema.FLOAT_KEYS:
        feats[k] = train.Feature(float_list=train.FloatList(value=[item[k]]))
    feats[schema.SAMPLE_RATE_KEY] = train.Feature(int64_list=train.Int64List(value=[schema.SAMPLE_RATE]))
    feats[schema.NUM_VALID_SAMPLES] = train.Feature(int64_list=train.Int64List(value=[item[schema.NUM_VALID_SAMPLES]]))
    for name, raw in feature_bytes.items():
        feats[name] = train.Feature(bytes_list=train.BytesList(value=[raw]))
    return train.Example(features=train.Features(feature=feats)).SerializeToString(deterministic=True)


def feature_bytes(item: Dict, computed: Dict[str, np.ndarray], i: int, features) -> Dict[str, bytes]:
    """The stored bytes of each feature of the batch's `i`-th segment (`audio` from its own PCM)."""
    return {name: pcm_to_bytes(item["pcm"]) if name == schema.AUDIO else
            np.ascontiguousarray(computed[name][i], dtype="<f4").tobytes() for name in features}


def featurize_batch(featurizer, batch: List[Dict], features) -> List[bytes]:
    """Serialized examples of a batch of segments: one feature call for the whole batch."""
    computed = featurizer(np.stack([item["pcm"] for item in batch]))
    return [serialize_example(item, feature_bytes(item, computed, i, features)) for i, item in enumerate(batch)]


def shard_meta(item: Dict) -> bytes:
    """What the shard merge needs of an example besides its bytes: id, speaker, recording key, recording
    id and real samples, tab-separated (manifest validation keeps tabs out of all of them)."""
    return "\t".join((item[schema.ID], item[schema.SPEAKER], item[schema.RECORDING], item["recording_id"],
                      str(item[schema.NUM_VALID_SAMPLES]))).encode("utf-8")
