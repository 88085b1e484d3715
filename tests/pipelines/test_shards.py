"""Spill files and their index: the shard merge reads examples by offset, never a whole shard."""
import io

import pytest

from pipelines import shards


def _spill(records):
    return io.BytesIO(b"".join(shards.spill_frame(k, m, p) for k, m, p in records))


def test_index_points_at_every_payload_and_sorts_deterministically():
    records = [(7, b"b-id", b"x" * 1000), (3, b"a-id", b""), (7, b"a-id", bytes(range(256)) * 3)]
    f = _spill(records)
    index = list(shards.index_spill(f))
    assert [(k, m, n) for k, m, _, n in index] == [(k, m, len(p)) for k, m, p in records]
    for (_, _, offset, size), (_, _, payload) in zip(index, records):
        f.seek(offset)
        assert f.read(size) == payload
    assert [(k, m) for k, m, *_ in shards.sort_spilled(index)] == [(3, b"a-id"), (7, b"a-id"), (7, b"b-id")]


@pytest.mark.parametrize("cut", [3, 17, 30])  # inside the header, the metadata, the payload
def test_a_truncated_spill_file_is_an_error_not_a_short_shard(cut):
    data = shards.spill_frame(1, b"meta", b"payload-bytes")
    with pytest.raises(ValueError, match="truncated"):
        list(shards.index_spill(io.BytesIO(data[:cut])))
