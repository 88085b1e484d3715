"""Decoding: any audio file -> 16 kHz mono int16 PCM, streamed from ffmpeg in fixed-size chunks.

Nothing here imports Beam or TensorFlow. ffmpeg is always called with an argument list, never a shell
string, and its input is forced through `file:`. A file that cannot become whole training audio raises
`AudioError` with a short stable reason code (`undecodable`, `truncated`, `corrupt`, ...), which the
builder turns into a rejection record.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence

import numpy as np

from pipelines.schema import SAMPLE_RATE, SAMPLE_WIDTH

CHUNK_SAMPLES = 1 << 18  # 262144 samples = 16.4 s = 512 KiB per read
_ERROR_LINE = re.compile(
    r"error while decoding|invalid data found|decode_frame\(\) failed|header missing|"
    r"invalid residual|corrupt|error decoding|packet too small|overread", re.IGNORECASE)
_DURATION = re.compile(r"^\s*Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #0:\d+.*?: Audio: ([^,\s]+)[^,]*, (\d+) Hz, ([^,]+)")
_NO_AUDIO_STREAM = ("does not contain any stream", "matches no streams")


def _is_error_line(line: str) -> bool:
    """A decoder/demuxer complaint, not ffmpeg echoing the header: the `Input #0 ... from '<path>'` and
    `Output #0` lines and the indented metadata/stream dump quote file names and tags (a title such as
    "Corruption" or a file named corrupted-....flac) and must not count as decoding errors."""
    if not line or line[0].isspace() or line.startswith(("Input #", "Output #")):
        return False
    return _ERROR_LINE.search(line) is not None


_GENERIC_FAILURES = ("Error opening output file", "Conversion failed", "Exiting normally")


class AudioError(Exception):
    """A recording that cannot become training audio. `reason` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def find_ffmpeg() -> str:
    """ffmpeg from $SPEAKER_FFMPEG, else the PATH, else the static binary shipped in the imageio-ffmpeg wheel.

    Which one is faster depends on the corpus (long files or many short clips): README, Performance."""
    explicit = os.environ.get("SPEAKER_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise RuntimeError("ffmpeg not found: apt-get install ffmpeg, pip install imageio-ffmpeg, "
                           "or set SPEAKER_FFMPEG") from exc


@dataclasses.dataclass
class DecodeInfo:
    """What ffmpeg said about the input, filled in while decoding."""

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


def decode_command(path: str, ffmpeg: Optional[str] = None) -> List[str]:
    """The ffmpeg argument list (never a shell string) decoding `path` to 16 kHz mono s16le on stdout.

    The input is forced through the `file:` protocol so that a manifest path can never make ffmpeg
    open a URL or parse a leading dash as an option.
    """
    return [ffmpeg or find_ffmpeg(), "-i", "file:" + os.path.abspath(path), "-f", "s16le", "-ac", "1",
            "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-map", "0:a:0", "pipe:1",
            "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]


def _parse_stderr(lines: Sequence[str], info: DecodeInfo) -> None:
    seen_output = False
    for line in lines:
        if line.startswith("Output #"):
            seen_output = True
        m = _DURATION.match(line)
        if m and info.declared_duration_s is None:
            h, mnt, s = m.groups()
            info.declared_duration_s = int(h) * 3600 + int(mnt) * 60 + float(s)
        m = _AUDIO_STREAM.search(line)
        if m and not seen_output and not info.codec:
            info.codec, info.input_sample_rate, info.channels = m.group(1), int(m.group(2)), m.group(3).strip()
        if _is_error_line(line):
            info.decode_errors += 1


def iter_decoded(path: str, info: DecodeInfo, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """Yield int16 chunks of `path` decoded to 16 kHz mono. Raises AudioError when ffmpeg fails.

    `info` is completed when the generator is exhausted. Only local paths: see `local_copy`.
    """
    if regular_file_size(path) == 0:
        raise AudioError("empty_file", "the file has 0 bytes")
    proc = subprocess.Popen(decode_command(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail: collections.deque = collections.deque(maxlen=400)  # bounded, whatever ffmpeg prints
    all_lines: List[str] = []

    def drain() -> None:
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            if len(all_lines) < 200:  # the header, where Duration and the stream are
                all_lines.append(line)
            elif _is_error_line(line):
                info.decode_errors += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    chunk_bytes = chunk_samples * SAMPLE_WIDTH
    leftover = b""
    try:
        while True:
            data = proc.stdout.read(chunk_bytes)
            if not data:
                break
            data = leftover + data
            usable = len(data) - len(data) % SAMPLE_WIDTH
            leftover = data[usable:]
            if usable:
                samples = np.frombuffer(data[:usable], dtype="<i2")
                info.decoded_samples += samples.size
                yield samples
    finally:
        if proc.poll() is None and proc.stdout:
            proc.stdout.close()
        rc = proc.wait()
        reader.join(timeout=10)
    _parse_stderr(all_lines, info)
    info.stderr_tail = "\n".join(list(tail)[-5:])
    if rc != 0:
        # the cause, not ffmpeg's closing "Error opening output files: …" or the header it echoes
        causes = [ln for ln in tail if ln.strip() and not ln[0].isspace()
                  and not ln.startswith(("Input #", "Output #", "Stream mapping", "Press [q]"))
                  and not any(g in ln for g in _GENERIC_FAILURES)]
        last = causes[-1] if causes else next((ln for ln in reversed(tail) if ln.strip()),
                                              f"ffmpeg exited with {rc}")
        # ffmpeg >= 5 prints a hint ("To ignore this, add a trailing '?' to the map.") after the reason
        no_stream = next((ln for ln in tail if any(m in ln for m in _NO_AUDIO_STREAM)), None)
        if no_stream is not None:
            raise AudioError("no_audio_stream", no_stream.strip())
        raise AudioError("undecodable", last.strip())


def probe(path: str, ffmpeg: Optional[str] = None, timeout: float = 60.0) -> DecodeInfo:
    """What the headers say (codec, rate, channels, duration) without decoding: `ffmpeg -i file:PATH` with no
    output reads the headers (for an MP3, the Xing/Info frame count) and exits. AudioError('not_audio')
    when ffmpeg finds no audio stream. ffprobe is not used: the imageio-ffmpeg fallback does not ship it."""
    regular_file_size(path)
    cmd = [ffmpeg or find_ffmpeg(), "-nostdin", "-hide_banner", "-i", "file:" + os.path.abspath(path)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=timeout)
    lines = proc.stderr.decode("utf-8", "replace").splitlines()
    info = DecodeInfo(stderr_tail="\n".join(lines[-5:]))
    _parse_stderr(lines, info)
    if not info.codec:
        said = next((ln.strip() for ln in lines if ln.strip() and not ln.startswith(("Input #", "  "))), "")
        raise AudioError("not_audio", said or "ffmpeg found no audio stream")
    return info


def check_decode(info: DecodeInfo, expected_duration_s: Optional[float] = None,
                 tolerance: float = 0.02) -> None:
    """Reject what decoded without an ffmpeg failure but is not whole: empty, truncated, corrupt."""
    decoded_s = info.decoded_samples / SAMPLE_RATE
    if info.decoded_samples == 0:
        raise AudioError("no_audio", "ffmpeg decoded no audio samples")
    if info.decode_errors:
        # ffmpeg's last lines are its size/time summary: quote the last complaint instead
        tail = info.stderr_tail.splitlines()
        said = next((ln for ln in reversed(tail) if _is_error_line(ln)), tail[-1] if tail else "")
        raise AudioError("corrupt", f"ffmpeg reported {info.decode_errors} decoding error(s): {said.strip()}")
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
