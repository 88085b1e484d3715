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


_EXAMPLE_CLASS = None


def example_message_class():
    """A protobuf message class wire-compatible with `tf.train.Example` (the same fields and numbers as
    tensorflow/core/example/example.proto and feature.proto), declared in a pool of its own: reading an example
    then needs the protobuf library only, not TensorFlow's 4-5 s import (the builder's main process in
    multi_processing mode never imports it otherwise)."""
    global _EXAMPLE_CLASS
    if _EXAMPLE_CLASS is not None:
        return _EXAMPLE_CLASS
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="speaker_datasets_example.proto", package="speaker_datasets",
                                               syntax="proto3")

    def message(name, *fields, nested=()):
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            msg.field.add(name=field_name, number=number, type=kind, label=label, type_name=type_name)
        for sub in nested:
            msg.nested_type.add().CopyFrom(sub)
        return msg

    for name, kind in (("BytesList", F.TYPE_BYTES), ("FloatList", F.TYPE_FLOAT), ("Int64List", F.TYPE_INT64)):
        message(name, ("value", 1, kind, F.LABEL_REPEATED, None))
    feature = message("Feature", *[(n, i, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, f".speaker_datasets.{t}")
                                   for n, i, t in (("bytes_list", 1, "BytesList"), ("float_list", 2, "FloatList"),
                                                   ("int64_list", 3, "Int64List"))])
    feature.oneof_decl.add(name="kind")
    for f in feature.field:
        f.oneof_index = 0
    entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".speaker_datasets.Feature")
    entry.options.map_entry = True
    message("Features", ("feature", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".speaker_datasets.Features.FeatureEntry"),
            nested=(entry,))
    message("Example", ("features", 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".speaker_datasets.Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    _EXAMPLE_CLASS = message_factory.GetMessageClass(pool.FindMessageTypeByName("speaker_datasets.Example"))
    return _EXAMPLE_CLASS


def parse_example(record: bytes):
    """The `features.feature` map of one serialized example, read without TensorFlow (example_message_class)."""
    return example_message_class().FromString(record).features.feature
