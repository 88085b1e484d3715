"""pipelines.speech_file: the speech PCM and its intervals in one temporary file, read back exactly."""
from __future__ import annotations

import io

import numpy as np
import pytest

from pipelines import speech_file


class OddReads(io.BytesIO):
    """A file whose reads return odd byte counts, as a remote stream may."""

    def read(self, n=-1):
        return super().read(n if n is None or n < 0 else max(1, min(n, 3333)))


@pytest.mark.parametrize("chunk", [1, 100, 1 << 18])
@pytest.mark.parametrize("opener", [io.BytesIO, OddReads])
def test_pcm_and_intervals_round_trip(chunk, opener):
    pcm = np.random.default_rng(1).integers(-32768, 32767, 10001, dtype=np.int16)
    intervals = [(0, 4000), (12000, 18001)]
    f = opener(pcm.astype("<i2").tobytes() + speech_file.intervals_trailer(intervals))
    assert speech_file.read_intervals(f, pcm.size) == intervals
    back = list(speech_file.iter_speech(f, pcm.size, chunk))  # after the intervals: it seeks back
    np.testing.assert_array_equal(np.concatenate(back), pcm)
    assert all(c.dtype == np.dtype("<i2") for c in back)


def test_a_short_file_is_an_error_not_silence():
    f = io.BytesIO(b"\x00\x01" * 10)
    with pytest.raises(ValueError, match="ends"):
        list(speech_file.iter_speech(f, 20))
