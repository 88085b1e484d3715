"""Audio files through an export: decoded with the builder's audio code and the dataset's decoder, pauses
stripped and cut as the dataset was (the export's BuildConfig), streamed from a temporary file so that memory
does not grow with a file's length. Used by trainer.predict, embed, enroll and verify.
"""
from __future__ import annotations

import contextlib
import math
import tempfile
from typing import Iterator, List, Optional

import numpy as np

from pipelines.decode import CHUNK_SAMPLES, AudioError, read_pcm
from pipelines.schema import SAMPLE_RATE
from pipelines.silence import analyze_and_strip

BATCH = 64
MIN_SPEECH_SECONDS = 0.5  # the default floor is this or half a segment, whichever is less
EMBED_CHUNK_SECONDS = 3.0  # a file's embedding is the mean of the embeddings of its 3-second pieces


def default_min_speech_seconds(info) -> float:
    return min(MIN_SPEECH_SECONDS, info.build_config.segmentation.segment_seconds / 2)


@contextlib.contextmanager
def speech_of(path: str, info, min_speech_s: Optional[float] = None):
    """(analysis, an iterator of int16 chunks of the speech-only PCM); AudioError('too_short') when less than
    `min_speech_s` of speech is left after silence stripping."""
    floor = default_min_speech_seconds(info) if min_speech_s is None else min_speech_s
    with tempfile.TemporaryFile() as speech:
        analysis = analyze_and_strip(path, speech.write, info.build_config.silence,
                                     decoder=info.build_config.decoder)
        if analysis.speech_s < floor:
            raise AudioError("too_short", f"{analysis.speech_s:.2f} s of speech after silence stripping (decoded "
                                          f"{analysis.decoded_s:.2f} s), less than the {floor:g} s needed "
                                          "(--min-speech-seconds)")
        speech.seek(0)
        yield analysis, (read_pcm(c) for c in iter(lambda: speech.read(CHUNK_SAMPLES * 2), b""))


def iter_file_batches(path: str, info, min_speech_s: Optional[float] = None) -> Iterator[np.ndarray]:
    """Float32 batches [<= BATCH, segment samples] of one file's segments, cut as the dataset was."""
    segmentation = info.build_config.segmentation
    with speech_of(path, info, min_speech_s) as (analysis, pcm):
        partial = "pad" if analysis.speech_samples < segmentation.segment_samples else "drop"
        batch: List[np.ndarray] = []
        for _, segment, _ in segmentation.cut(pcm, partial=partial):
            batch.append(segment.astype(np.float32) / 32768.0)
            if len(batch) == BATCH:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)


def file_embedding(model, info, path: str, min_speech_s: Optional[float] = None,
                   chunk_seconds: float = EMBED_CHUNK_SECONDS) -> np.ndarray:
    """One unit-length embedding of a file: the mean of its pieces' embeddings. An open-set export embeds
    `chunk_seconds` pieces (the last one when at least a third as long) with its `embed` signature; a
    closed-set export its segments with `serving_default`."""
    total, count = None, 0
    if info.kind == "open_set":
        chunk = int(round(chunk_seconds * SAMPLE_RATE))
        embed = model.signatures["embed"]
        with speech_of(path, info, min_speech_s) as (analysis, pcm):
            pieces = max(1, math.floor(analysis.speech_samples / chunk + 2 / 3))
            buf = np.zeros(0, np.int16)
            done = 0
            for data in pcm:
                buf = np.concatenate((buf, data))
                while done < pieces - 1 and buf.size >= chunk:
                    e = embed(waveform=buf[:chunk].astype(np.float32) / 32768.0)["embedding"].numpy()
                    total, count, done = (e if total is None else total + e), count + 1, done + 1
                    buf = buf[chunk:]
            e = embed(waveform=buf.astype(np.float32) / 32768.0)["embedding"].numpy()  # the rest, the last piece
            total, count = (e if total is None else total + e), count + 1
    else:
        for waves in iter_file_batches(path, info, min_speech_s):
            e = model.signatures["serving_default"](waveform=waves)["embedding"].numpy()
            e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
            total, count = (e.sum(axis=0) if total is None else total + e.sum(axis=0)), count + len(e)
    mean = total / count
    return mean / max(float(np.linalg.norm(mean)), 1e-12)
