"""Segment arithmetic, in one place: seconds to samples, how many windows a recording gives, cutting
them from a chunk stream, their ids, and where a segment lies in the original file.

Plain functions over sample counts and int16 chunks (no Beam, no TensorFlow). The planner counts
segments with `count_segments` before any audio is cut; the cutter and trainer.predict cut them with
`iter_segments`; both take the same `Segmentation`, so the plan and the shards always agree.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from pipelines.schema import SAMPLE_RATE

PARTIAL_POLICIES = ("drop", "pad")


def count_segments(total: int, seg: int, hop: int, partial: str = "drop") -> int:
    """How many segments `iter_segments` cuts from `total` samples (used to plan before cutting)."""
    if total <= 0:
        return 0
    full = 0 if total < seg else 1 + (total - seg) // hop
    if partial == "pad":
        covered = 0 if full == 0 else (full - 1) * hop + seg
        if covered < total and full * hop < total:  # hop > seg: the rest may lie between windows
            full += 1
    return full


def iter_segments(chunks: Iterator[np.ndarray], seg: int, hop: int, partial: str = "drop",
                  limit: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray, int]]:
    """Cut (start, samples[seg], valid_samples) windows every `hop` samples from a chunk stream.

    With `partial="pad"` the audio after the last full window becomes one zero-padded window.
    Holds at most one window plus one chunk in memory.
    """
    buf = np.zeros(0, np.int16)
    buf_start = 0  # sample index of buf[0]
    start = 0
    emitted = 0
    total = 0
    for chunk in chunks:
        total += chunk.size
        buf = np.concatenate((buf, chunk)) if buf.size else chunk
        while start + seg <= buf_start + buf.size:
            if limit is not None and emitted >= limit:
                return
            off = start - buf_start
            yield start, np.array(buf[off:off + seg], dtype=np.int16), seg
            emitted += 1
            start += hop
        drop = min(start - buf_start, buf.size)
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    if partial == "pad" and (limit is None or emitted < limit):
        covered = 0 if emitted == 0 else start - hop + seg
        if covered < total and start < total:  # never a window of padding only (hop > seg)
            off = start - buf_start
            piece = buf[off:] if off < buf.size else np.zeros(0, np.int16)
            out = np.zeros(seg, np.int16)
            out[: piece.size] = piece
            yield start, out, int(piece.size)


def seconds_to_samples(seconds: float) -> int:
    """Seconds at 16 kHz, rounded to whole samples: the one conversion every setting goes through."""
    return int(round(seconds * SAMPLE_RATE))


def segment_id(rec_id: str, start_sample: int) -> str:
    """`<recording id>-<start in ms, 9 digits>`: the example id, stable across runs and runners."""
    return f"{rec_id}-{start_sample * 1000 // SAMPLE_RATE:09d}"


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """Windows of `segment_samples` every `hop_samples`; the piece after the last whole window is
    dropped or zero-padded (`partial`)."""

    segment_samples: int
    hop_samples: int
    partial: str = "drop"

    def count(self, total: int, partial: Optional[str] = None) -> int:
        return count_segments(total, self.segment_samples, self.hop_samples, partial or self.partial)

    def cut(self, chunks: Iterator[np.ndarray], limit: Optional[int] = None,
            partial: Optional[str] = None) -> Iterator[Tuple[int, np.ndarray, int]]:
        return iter_segments(chunks, self.segment_samples, self.hop_samples, partial or self.partial, limit)

    @property
    def segment_seconds(self) -> float:
        return self.segment_samples / SAMPLE_RATE

    @property
    def hop_seconds(self) -> float:
        return self.hop_samples / SAMPLE_RATE


class SourceMap:
    """Maps sample indices of the speech-only timeline back to the decoded original's timeline.

    Built once per recording; each lookup is a binary search (a 10-hour file has tens of thousands of
    kept intervals and of segments, so a linear walk per segment would be quadratic)."""

    def __init__(self, intervals: Sequence[Tuple[int, int]]):
        self.starts = [start for start, _ in intervals]
        self.end = intervals[-1][1] if intervals else 0
        self.speech_starts, seen = [], 0  # where each interval begins in the speech timeline
        for start, end in intervals:
            self.speech_starts.append(seen)
            seen += end - start
        self.total = seen

    def __call__(self, speech_sample: int) -> int:
        if speech_sample >= self.total:
            return self.end
        i = bisect.bisect_right(self.speech_starts, speech_sample) - 1
        return self.starts[i] + speech_sample - self.speech_starts[i]


def source_offset(intervals: Sequence[Tuple[int, int]], speech_sample: int) -> int:
    """One lookup of SourceMap (build a SourceMap to map many samples of one recording)."""
    return SourceMap(intervals)(speech_sample)
