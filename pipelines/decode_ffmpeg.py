"""The `ffmpeg` decoder: the ffmpeg command line, one process per file, 16 kHz mono s16 read from its stdout.

ffmpeg is always called with an argument list, never a shell string, and its input is forced through
`file:`, so a manifest path never becomes a URL or an option. What it prints on stderr (the header dump,
decoder complaints, why it failed) fills the `DecodeInfo` that `pipelines.decode.check_decode` judges.
Each file costs one ffmpeg start (~90 ms CPU for Debian's build): the in-process `pyav` decoder is the
default; this one stays for comparison (the parity tests, the benchmarks) and for a system FFmpeg build.
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import threading
from typing import Iterator, List, Optional, Sequence

import numpy as np

from pipelines.decode import CHUNK_SAMPLES, AudioError, DecodeInfo, is_error_line, regular_file_size
from pipelines.schema import SAMPLE_RATE, SAMPLE_WIDTH

_DURATION = re.compile(r"^\s*Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #0:\d+.*?: Audio: ([^,\s]+)[^,]*, (\d+) Hz, ([^,]+)")
_NO_AUDIO_STREAM = ("does not contain any stream", "matches no streams")
_GENERIC_FAILURES = ("Error opening output file", "Conversion failed", "Exiting normally")


def find_ffmpeg() -> str:
    """ffmpeg from $SPEAKER_FFMPEG, else the PATH, else the static binary shipped in the imageio-ffmpeg wheel
    (the `ffmpeg` decoder, the benchmarks, the fixtures and the demo corpus use it)."""
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




def decode_command(path: str, ffmpeg: Optional[str] = None) -> List[str]:
    """The ffmpeg argument list (never a shell string) decoding `path` to 16 kHz mono s16le on stdout.

    The input is forced through the `file:` protocol so that a manifest path can never make ffmpeg
    open a URL or parse a leading dash as an option.
    """
    return [ffmpeg or find_ffmpeg(), "-i", "file:" + os.path.abspath(path), "-f", "s16le", "-ac", "1",
            "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-map", "0:a:0", "pipe:1",
            "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]


def parse_stderr(lines: Sequence[str], info: DecodeInfo) -> None:
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
        if is_error_line(line):
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
            elif is_error_line(line):
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
    parse_stderr(all_lines, info)
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
    parse_stderr(lines, info)
    if not info.codec:
        said = next((ln.strip() for ln in lines if ln.strip() and not ln.startswith(("Input #", "  "))), "")
        raise AudioError("not_audio", said or "ffmpeg found no audio stream")
    return info


def build(ffmpeg: Optional[str] = None) -> str:
    """The first line of `ffmpeg -version` (e.g. "ffmpeg version 5.1.9-0+deb12u1"), with the binary's path."""
    exe = ffmpeg or find_ffmpeg()
    out = subprocess.run([exe, "-nostdin", "-version"], stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=60).stdout.decode("utf-8", "replace").splitlines()
    first = out[0].split(" Copyright")[0] if out else "ffmpeg (unknown version)"
    return f"{first} ({exe})"
