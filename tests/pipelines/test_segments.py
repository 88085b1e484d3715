"""pipelines.segments: counting and cutting windows, and mapping them back to the original file."""
from __future__ import annotations


import numpy as np
import pytest

from tests.pipelines.conftest import strip

from pipelines.segments import count_segments, iter_segments, source_offset


# =============================================================================================
# 4. Segmentation
# =============================================================================================
def ramp(total, offset=0):
    return ((np.arange(total, dtype=np.int64) + offset) % 32768).astype(np.int16)


def reference_segments(x, seg, hop, partial):
    """Every hop a full window; with "pad" one zero-padded window holding the audio after the last
    full one, when there is such audio at or after the next window start."""
    out, start = [], 0
    while start + seg <= x.size:
        out.append((start, x[start:start + seg], seg))
        start += hop
    if partial == "pad":
        covered = out[-1][0] + seg if out else 0
        if covered < x.size and start < x.size:
            piece = x[start:]
            window = np.zeros(seg, np.int16)
            window[:piece.size] = piece
            out.append((start, window, piece.size))
    return out


def chunked(x, sizes):
    """`x` in chunks of the given sizes (cycled), as read-only views like np.frombuffer gives."""
    x = np.frombuffer(x.tobytes(), "<i2")
    i, k = 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        yield x[i:i + n]
        i += n
        k += 1


def assert_segments_equal(got, want):
    assert [(s, v) for s, _, v in got] == [(s, v) for s, _, v in want]
    for (start, a, _), (_, b, _) in zip(got, want):
        assert a.dtype == np.int16 and a.shape == b.shape and np.array_equal(a, b), (start, a, b)


def test_count_segments_matches_iter_segments_everywhere():
    rng = np.random.default_rng(7)
    checked = 0
    for total in list(range(0, 41)) + [97, 160]:
        x = ramp(total, offset=int(rng.integers(0, 32768)))
        for seg in (1, 2, 3, 5, 8, 10, 16, 40):
            for hop in (1, 2, 3, 5, 8, 10, 13, 16, 25, 41):
                for partial in ("drop", "pad"):
                    want = reference_segments(x, seg, hop, partial)
                    n = count_segments(total, seg, hop, partial)
                    assert n == len(want), (total, seg, hop, partial)
                    sizes = [int(s) for s in rng.integers(1, 2 * seg + 3, size=5)]
                    chunkings = [[x], chunked(x, sizes)]
                    if total <= 40:  # one sample at a time, and empty chunks, on the small ones
                        chunkings += [chunked(x, [1]), chunked(x, [seg, 0, 3])]
                    for chunks in chunkings:
                        got = list(iter_segments(iter(chunks), seg, hop, partial))
                        assert_segments_equal(got, want)
                    checked += 1
    print(f"\ncount_segments == len(iter_segments) in {checked} (total, seg, hop, partial) cases")


@pytest.mark.parametrize("total,seg,hop,partial,expected", [
    (25, 10, 4, "drop", [(0, 10), (4, 10), (8, 10), (12, 10)]),
    (25, 10, 4, "pad", [(0, 10), (4, 10), (8, 10), (12, 10), (16, 9)]),
    (25, 10, 10, "pad", [(0, 10), (10, 10), (20, 5)]),
    (30, 10, 10, "pad", [(0, 10), (10, 10), (20, 10)]),  # nothing left over: no padded window
    (10, 10, 3, "pad", [(0, 10)]),  # total == seg
    (9, 10, 3, "drop", []),  # total < seg
    (9, 10, 3, "pad", [(0, 9)]),
    (25, 10, 20, "pad", [(0, 10), (20, 5)]),  # hop > seg
    (15, 10, 20, "pad", [(0, 10)]),  # hop > seg, the rest lies between windows: no all-padding window
    (20, 10, 20, "pad", [(0, 10)]),
    (21, 10, 20, "pad", [(0, 10), (20, 1)]),
    (0, 10, 10, "pad", []),
])
def test_segments_by_hand(total, seg, hop, partial, expected):
    x = ramp(total, offset=32760)  # wraps 32767 -> 0 inside the windows
    got = list(iter_segments(iter([x]), seg, hop, partial))
    assert [(s, v) for s, _, v in got] == expected
    assert count_segments(total, seg, hop, partial) == len(expected)
    for start, window, valid in got:
        assert valid > 0
        np.testing.assert_array_equal(window[:valid], x[start:start + valid])
        assert not window[valid:].any()  # zero padding


def test_segments_large_ramp_and_padded_tail():
    seg, hop = 16000, 8000
    total = 5 * 16000 + 1234
    x = ramp(total)
    for partial in ("drop", "pad"):
        got = list(iter_segments(chunked(x, [4096, 333, 70000]), seg, hop, partial))
        assert_segments_equal(got, reference_segments(x, seg, hop, partial))
    start, last, valid = got[-1]
    assert (start, valid) == (72000, total - 72000) == (72000, 9234)
    np.testing.assert_array_equal(last[:valid], (np.arange(72000, total) % 32768).astype(np.int16))
    assert not last[valid:].any()
    assert [s for s, _, _ in got] == list(range(0, 72001, 8000))


def test_segments_limit():
    x = ramp(123)
    for partial in ("drop", "pad"):
        want = reference_segments(x, 10, 7, partial)
        for limit in range(0, len(want) + 3):
            got = list(iter_segments(chunked(x, [11]), 10, 7, partial, limit=limit))
            assert_segments_equal(got, want[:limit])


def test_segments_are_copies():
    x = ramp(50)
    chunk = x.copy()
    got = list(iter_segments(iter([chunk]), 10, 10))
    chunk[:] = 0
    assert got[1][1][0] == 10  # mutating the input afterwards does not change emitted windows


# =============================================================================================
# 5. source_offset
# =============================================================================================
def test_source_offset_by_hand():
    intervals = [(100, 200), (300, 350), (1000, 1100)]
    cases = {0: 100, 1: 101, 99: 199, 100: 300, 149: 349, 150: 1000, 249: 1099, 250: 1100, 10 ** 6: 1100}
    for speech_sample, original in cases.items():
        assert source_offset(intervals, speech_sample) == original
    assert source_offset([], 5) == 0
    assert source_offset([(0, 10)], 3) == 3


def test_source_offset_maps_real_stripped_audio_back(bursts):
    sig, path, _ = bursts
    analysis, speech, _ = strip(path)
    original = sig.int16()
    assert len(analysis.intervals) == 4
    idx = np.concatenate([np.arange(0, speech.size, 97), [speech.size - 1]])
    for s, e in analysis.intervals:  # both sides of every seam
        seam = sum(b - a for a, b in analysis.intervals if a < s)
        idx = np.concatenate([idx, [max(seam - 1, 0), seam]])
    mapped = np.array([source_offset(analysis.intervals, int(k)) for k in idx])
    np.testing.assert_array_equal(speech[idx], original[mapped])
    # it lands only inside kept intervals
    assert all(any(a <= m < b for a, b in analysis.intervals) for m in mapped)
    # a segment start maps where its first sample really is
    for start, window, _ in iter_segments(iter([speech]), 16000, 16000):
        src = source_offset(analysis.intervals, start)
        assert window[0] == original[src]

