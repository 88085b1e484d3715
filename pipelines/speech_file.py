"""The builder's one temporary file per recording between AnalyzeAudio and CutSegments: the speech-only
16 kHz PCM (int16 little-endian, `speech_samples` of them) followed by its kept intervals as JSON (where each
piece of speech was in the decoded file, for `source_start_s`).

One file instead of two (the PCM and an `.intervals.json` beside it): creating a file costs about as much
as decoding a 3-second clip in-process, so on many short recordings the second one was a sizeable share of
the analysis. Local or remote (gs://) through the opener given; no Beam here.
"""
from __future__ import annotations

import json
from typing import BinaryIO, Iterator, List, Sequence, Tuple

import numpy as np

from pipelines.decode import CHUNK_SAMPLES
from pipelines.schema import SAMPLE_WIDTH


def intervals_trailer(intervals: Sequence[Tuple[int, int]]) -> bytes:
    """The bytes written after the speech PCM."""
    return json.dumps([list(x) for x in intervals]).encode("utf-8")


def read_intervals(f: BinaryIO, speech_samples: int) -> List[Tuple[int, int]]:
    """The kept intervals stored after `speech_samples` of PCM in the seekable file `f`."""
    f.seek(speech_samples * SAMPLE_WIDTH)
    return [(int(a), int(b)) for a, b in json.loads(f.read().decode("utf-8"))]


def iter_speech(f: BinaryIO, speech_samples: int, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """The speech PCM of the seekable file `f` as int16 chunks, stopping before the trailer."""
    f.seek(0)
    remaining = speech_samples * SAMPLE_WIDTH
    carry = b""
    while remaining > 0:
        data = f.read(min(remaining, chunk_samples * SAMPLE_WIDTH))
        if not data:
            raise ValueError(f"the speech file ends {remaining} bytes early")
        remaining -= len(data)
        data = carry + data
        usable = len(data) - len(data) % SAMPLE_WIDTH
        carry = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype="<i2")


def read_window(f: BinaryIO, start: int, samples: int) -> np.ndarray:
    """`samples` int16 samples of the speech PCM from sample `start` of the seekable file `f` (the caller keeps
    start + samples within the speech)."""
    f.seek(start * SAMPLE_WIDTH)
    return np.frombuffer(f.read(samples * SAMPLE_WIDTH), dtype="<i2")
