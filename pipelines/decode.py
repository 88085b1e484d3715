"""Decoding: any audio file -> 16 kHz mono int16 PCM in fixed-size chunks, and the reasons a file is refused.

Two decoders, chosen explicitly by name (`DECODERS`; a build's `--decoder`, stored in its config):
- `pyav` (the default): in-process, FFmpeg's libraries from the `av` wheel (`pipelines.decode_pyav`); about
  1 ms of fixed cost a file, headers read once, the GIL released while FFmpeg works.
- `ffmpeg`: the ffmpeg command line, one process per file (`pipelines.decode_ffmpeg`); the installed FFmpeg
  build, ~90 ms of start-up a file.
Both stream (memory does not grow with a file's length), never open anything but a regular local file, and
report into the same `DecodeInfo`, which `check_decode` turns into the same `AudioError` reasons
(`undecodable`, `truncated`, `corrupt`, ...) that the builder records as rejections. A backend is imported
when first used. Nothing here imports Beam or TensorFlow.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import re
import shutil
import stat
import tempfile
from typing import BinaryIO, Callable, Dict, Iterator, Optional

import numpy as np

from pipelines.schema import SAMPLE_RATE, SAMPLE_WIDTH

CHUNK_SAMPLES = 1 << 18  # 262144 samples = 16.4 s = 512 KiB per chunk
DECODERS = ("pyav", "ffmpeg")
DEFAULT_DECODER = "pyav"
_BACKENDS = {"pyav": "pipelines.decode_pyav", "ffmpeg": "pipelines.decode_ffmpeg"}
_ERROR_LINE = re.compile(
    r"error while decoding|invalid data found|decode_frame\(\) failed|header missing|"
    r"invalid residual|corrupt|error decoding|packet too small|overread", re.IGNORECASE)


def is_error_line(line: str) -> bool:
    """A decoder/demuxer complaint, not ffmpeg echoing the header: the `Input #0 ... from '<path>'` and
    `Output #0` lines and the indented metadata/stream dump quote file names and tags (a title such as
    "Corruption" or a file named corrupted-....flac) and must not count as decoding errors."""
    if not line or line[0].isspace() or line.startswith(("Input #", "Output #")):
        return False
    return _ERROR_LINE.search(line) is not None


class AudioError(Exception):
    """A recording that cannot become training audio. `reason` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclasses.dataclass
class DecodeInfo:
    """What the decoder said about the input (its headers, what it decoded, its complaints), filled in while
    decoding."""

    codec: str = ""
    input_sample_rate: int = 0
    channels: str = ""
    declared_duration_s: Optional[float] = None
    decoded_samples: int = 0
    decode_errors: int = 0
    stderr_tail: str = ""


def regular_file_size(path: str, shown: Optional[str] = None) -> int:
    """The size of `path`, a regular file; AudioError when it is missing, a folder, a FIFO, a socket or a
    device (never opened: a FIFO would block the reader forever). `shown` is the path for messages."""
    shown = shown or path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError("missing_file", f"no such file: {shown}") from None
    except OSError as exc:
        raise AudioError("unreadable_file", f"{shown}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise AudioError("not_a_file", f"{shown} is {kind}")
    return st.st_size


def backend(decoder: str):
    """The module of decoder `decoder` (one of DECODERS), imported on first use; ValueError for another name."""
    if decoder not in _BACKENDS:
        raise ValueError(f"unknown decoder {decoder!r}: choose from {', '.join(DECODERS)}")
    return importlib.import_module(_BACKENDS[decoder])


def iter_decoded(path: str, info: DecodeInfo, chunk_samples: int = CHUNK_SAMPLES,
                 decoder: str = DEFAULT_DECODER) -> Iterator[np.ndarray]:
    """Yield int16 chunks of `path` decoded to 16 kHz mono by `decoder`; AudioError when it cannot be decoded.

    `info` is completed when the generator is exhausted; `check_decode(info)` then tells whether the audio is
    whole. Only local paths: see `local_copy`."""
    return backend(decoder).iter_decoded(path, info, chunk_samples)


def probe(path: str, decoder: str = DEFAULT_DECODER) -> DecodeInfo:
    """What the headers say (codec, rate, channels, duration) without decoding; AudioError('not_audio') when
    the decoder finds no audio stream."""
    return backend(decoder).probe(path)


_BUILDS: Dict[str, str] = {}


def decoder_build(decoder: str = DEFAULT_DECODER) -> str:
    """The decoder's name and FFmpeg build (e.g. "PyAV 18.1.0 (FFmpeg 8.1.2)"): the same build decodes the
    same bytes, another build may differ in the last bit of some samples (README, How it works: Decode)."""
    if decoder not in _BUILDS:
        _BUILDS[decoder] = backend(decoder).build()
    return _BUILDS[decoder]


def check_decode(info: DecodeInfo, expected_duration_s: Optional[float] = None,
                 tolerance: float = 0.02) -> None:
    """Reject what decoded without a decoder failure but is not whole: empty, truncated, corrupt."""
    decoded_s = info.decoded_samples / SAMPLE_RATE
    if info.decoded_samples == 0:
        raise AudioError("no_audio", "FFmpeg decoded no audio samples")
    if info.decode_errors:
        # ffmpeg's last lines are its size/time summary: quote the last complaint instead
        tail = info.stderr_tail.splitlines()
        said = next((ln for ln in reversed(tail) if is_error_line(ln)), tail[-1] if tail else "")
        raise AudioError("corrupt", f"FFmpeg reported {info.decode_errors} decoding error(s): {said.strip()}")
    declared = info.declared_duration_s
    if declared and decoded_s < declared * (1 - tolerance) - 0.5:
        raise AudioError("truncated", f"decoded {decoded_s:.2f} s of a declared {declared:.2f} s")
    if expected_duration_s and abs(decoded_s - expected_duration_s) > max(2.0, tolerance * expected_duration_s):
        raise AudioError("duration_mismatch",
                         f"decoded {decoded_s:.2f} s but the manifest says {expected_duration_s:.2f} s")


def iter_file_chunks(f: BinaryIO, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    while True:
        data = f.read(chunk_samples * SAMPLE_WIDTH)
        if not data:
            return
        yield np.frombuffer(data, dtype="<i2")


def read_pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


@contextlib.contextmanager
def local_copy(path: str, open_fn: Callable[[str], BinaryIO]) -> Iterator[str]:
    """A local path for `path`: itself when local, else a temporary copy made through `open_fn`
    (Beam's FileSystems.open), since some containers (mp4/m4a) need a seekable input."""
    if "://" not in path:
        yield path
        return
    suffix = os.path.splitext(path)[1][:10]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with open_fn(path) as src:
            shutil.copyfileobj(src, tmp, length=1 << 20)
        tmp.flush()
        yield tmp.name


def pcm_to_bytes(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def write_wav(path_or_file, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a WAV file (for fixtures and the demo corpus)."""
    import wave

    with wave.open(path_or_file if isinstance(path_or_file, io.IOBase) else str(path_or_file), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
