"""The short-clip workload of `benchmarks.builder --short-clips DIR`: many 3-second clips of real speech against
one long file of the same total length, so the builder's cost per audio second can be compared across file counts.

Clips are cut from the FLACs under DIR (LibriSpeech's 16 kHz mono speech; any audio works, it is decoded
and resampled first), round robin over the files with starts every `hop_s` seconds, so no two clips hold the
same audio; each is written as a 16 kHz mono FLAC, as LibriSpeech ships it. The long file is the clips
concatenated, in the same order, as one FLAC. Speakers are the source files' folders.
"""
from __future__ import annotations

import glob
import json
import os
from fractions import Fraction
from typing import Dict, List, Sequence, Tuple

import av
import numpy as np

from pipelines.decode import DecodeInfo, iter_decoded
from pipelines.schema import SAMPLE_RATE


def write_flac(path: str, samples: np.ndarray) -> None:
    """16 kHz mono int16 samples as a FLAC file (in-process: a thousand clips in a second or two)."""
    with av.open(path, "w") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        stream.format = "s16"
        block = 4096
        for start in range(0, samples.size, block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, start:start + block]),
                                               format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts, frame.time_base = start, Fraction(1, SAMPLE_RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def source_files(source_dir: str) -> List[Tuple[str, str]]:
    """(path, speaker) of every FLAC under `source_dir`, sorted; the speaker is the file's folder."""
    paths = sorted(glob.glob(os.path.join(source_dir, "**", "*.flac"), recursive=True))
    if not paths:
        raise SystemExit(f"--short-clips {source_dir}: no .flac files")
    return [(p, os.path.basename(os.path.dirname(p))) for p in paths]


def cut_clips(sources: Sequence[Tuple[str, np.ndarray]], count: int, clip_s: float, hop_s: float
              ) -> List[Tuple[int, int]]:
    """(source index, first sample) of `count` clips: round robin over the sources, starts `hop_s` apart."""
    clip, hop = int(clip_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    starts = [list(range(0, max(0, x.size - clip) + 1, hop)) for _, x in sources]
    out: List[Tuple[int, int]] = []
    k = 0
    while len(out) < count:
        if not any(k < len(s) for s in starts):
            raise SystemExit(f"the sources hold fewer than {count} clips of {clip_s:g} s at a hop of {hop_s:g} s")
        for i, s in enumerate(starts):
            if k < len(s) and len(out) < count:
                out.append((i, s[k]))
        k += 1
    return out


def make_workload(source_dir: str, work: str, count: int = 1000, clip_s: float = 3.0,
                  hop_s: float = 1.5) -> Dict[str, Dict]:
    """Write the clips, their manifest, the long file and its manifest under `work`; returns
    {"short": {...}, "long": {...}}, each with its manifest path, file count and audio seconds."""
    sources = []
    for path, speaker in source_files(source_dir):
        chunks = list(iter_decoded(path, DecodeInfo()))
        sources.append((speaker, np.concatenate(chunks) if chunks else np.zeros(0, np.int16)))
    clip = int(clip_s * SAMPLE_RATE)
    clips_dir = os.path.join(work, "clips")
    os.makedirs(clips_dir, exist_ok=True)
    lines, pieces = [], []
    for n, (i, start) in enumerate(cut_clips(sources, count, clip_s, hop_s)):
        speaker, x = sources[i]
        piece = x[start:start + clip]
        pieces.append(piece)
        path = os.path.join(clips_dir, f"clip-{n:05d}.flac")
        write_flac(path, piece)
        lines.append(json.dumps({"id": f"clip-{n:05d}", "path": path, "speaker": f"librispeech:{speaker}",
                                 "duration_s": clip_s}) + "\n")
    short_manifest = os.path.join(work, "short.jsonl")
    with open(short_manifest, "w") as f:
        f.writelines(lines)
    long_path = os.path.join(work, "long.flac")
    write_flac(long_path, np.concatenate(pieces))
    long_manifest = os.path.join(work, "long.jsonl")
    with open(long_manifest, "w") as f:
        f.write(json.dumps({"id": "long", "path": long_path, "speaker": "librispeech:all",
                            "duration_s": count * clip_s}) + "\n")
    seconds = count * clip_s
    return {"short": {"manifest": short_manifest, "files": count, "audio_seconds": seconds},
            "long": {"manifest": long_manifest, "files": 1, "audio_seconds": seconds}}
