"""TFRecord framing and the deterministic shard writer's spill files (plain functions, no Beam).

Shards are written in two steps so that no runner ever holds a split in memory: each bundle appends
its examples to small spill files, one per (split, shard); then each shard's spill files are merged,
sorted by a hash of the example id (a deterministic shuffle, as TFDS does) and framed as TFRecord.
The merge sorts an index of (key, id, file, offset) and reads each example by offset, so memory is
about 300 bytes per example of one shard (key, id, offsets), whatever the shard and dataset sizes.
"""
from __future__ import annotations

import math
import struct
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

import google_crc32c

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_SPILL_HEADER = struct.Struct("<QII")  # sort key, meta length, payload length


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(record: bytes) -> bytes:
    """One record in TFRecord framing: length, masked CRC32C of length, data, masked CRC32C of data."""
    length = _U64.pack(len(record))
    return length + _U32.pack(_masked_crc(length)) + record + _U32.pack(_masked_crc(record))


def iter_tfrecords(f: BinaryIO, check_crc: bool = True) -> Iterator[bytes]:
    """Records of a TFRecord stream; raises ValueError on a corrupt or truncated record."""
    while True:
        header = f.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ValueError("truncated TFRecord header")
        (length,) = _U64.unpack(header[:8])
        if check_crc and _U32.unpack(header[8:])[0] != _masked_crc(header[:8]):
            raise ValueError("corrupt TFRecord length")
        data = f.read(length)
        footer = f.read(4)
        if len(data) < length or len(footer) < 4:
            raise ValueError("truncated TFRecord")
        if check_crc and _U32.unpack(footer)[0] != _masked_crc(data):
            raise ValueError("corrupt TFRecord data")
        yield data


def spill_frame(sort_key: int, meta: bytes, payload: bytes) -> bytes:
    return _SPILL_HEADER.pack(sort_key, len(meta), len(payload)) + meta + payload


def index_spill(f: BinaryIO) -> Iterator[Tuple[int, bytes, int, int]]:
    """(sort key, meta, payload offset, payload length) of each record of a seekable spill file, without
    reading the payloads: merging a shard then holds its index in memory, never its examples."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    while True:
        header = f.read(_SPILL_HEADER.size)
        if not header:
            return
        if len(header) < _SPILL_HEADER.size:
            raise ValueError("truncated spill file")
        key, meta_len, payload_len = _SPILL_HEADER.unpack(header)
        meta = f.read(meta_len)
        offset = f.tell()
        if len(meta) < meta_len or offset + payload_len > size:
            raise ValueError("truncated spill file")
        f.seek(payload_len, 1)
        yield key, meta, offset, payload_len


def sort_spilled(records: List[Tuple]) -> List[Tuple]:
    """Deterministic order within a shard: by id hash, then by the metadata (which starts with the id).
    `records` are `index_spill` entries (or any tuples that start with the key and the metadata)."""
    return sorted(records, key=lambda r: (r[0], r[1]))


def shard_counts(expected: Dict[str, float], bytes_per_example: int, num_shards: Optional[int],
                 shard_bytes: int) -> Dict[str, int]:
    """Shards per split: `num_shards` when given, else enough for `shard_bytes` each; 0 for an empty split."""
    out = {}
    for split, n in expected.items():
        if n <= 0:
            out[split] = 0
        elif num_shards:
            out[split] = num_shards
        else:
            out[split] = max(1, int(math.ceil(n * bytes_per_example / shard_bytes)))
    return out


def parse_shard_meta(meta: bytes) -> Tuple[str, str, str, str, int]:
    """(segment id, speaker, recording key, recording id, real samples) of `examples.shard_meta`."""
    seg_id, speaker, recording, rec_id, valid = meta.decode("utf-8").split("\t")
    return seg_id, speaker, recording, rec_id, int(valid)
