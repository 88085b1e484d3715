"""Audio as plain functions: ffmpeg streaming decode to 16 kHz mono int16, silence stripping, segmentation.

Nothing here imports Beam or TensorFlow. Memory never grows with the length of a file: audio moves in
fixed-size chunks between ffmpeg, local temporary files and the output; only per-pause metadata (the
kept intervals) is held, which is a few bytes per pause.

Why not pydub's `silence.detect_nonsilent`: it loads the whole file into memory, loops in Python over
every millisecond and takes an absolute dBFS threshold. Here the threshold is relative to the
recording's own speech level, and the work is vectorised numpy over 10 ms frames.
"""
from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pipelines.schema import SAMPLE_RATE, SAMPLE_WIDTH

CHUNK_SAMPLES = 1 << 18  # 262144 samples = 16.4 s = 512 KiB per read
FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms analysis frames
_DB_MIN, _DB_MAX, _DB_STEP = -120.0, 0.0, 0.1
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

    Measured here: Debian's ffmpeg decodes long MP3s about twice as fast per CPU second as the wheel's
    static build, but starts in ~108 ms against ~27 ms; for corpora of many short clips set
    SPEAKER_FFMPEG to `python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"`
    (3,000 FSDD clips: 6 min 9 s -> 1 min 36 s on one worker)."""
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


def decode_command(path: str, ffmpeg: Optional[str] = None) -> List[str]:
    """The ffmpeg argument list (never a shell string) decoding `path` to 16 kHz mono s16le on stdout.

    The input is forced through the `file:` protocol so that a manifest path can never make ffmpeg
    open a URL or parse a leading dash as an option.
    """
    import ffmpeg as ffmpeg_python  # ffmpeg-python builds the argument list

    stream = ffmpeg_python.input("file:" + os.path.abspath(path)).output(
        "pipe:1", format="s16le", acodec="pcm_s16le", ac=1, ar=SAMPLE_RATE, map="0:a:0",
    )
    return stream.global_args("-nostdin", "-hide_banner", "-nostats", "-loglevel", "info").compile(
        cmd=ffmpeg or find_ffmpeg())


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
    if not os.path.exists(path):
        raise AudioError("missing_file", f"no such file: {path}")
    if os.path.getsize(path) == 0:
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
    if not os.path.exists(path):
        raise AudioError("missing_file", f"no such file: {path}")
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


# ---------------------------------------------------------------------------------------------
# Levels and silence
# ---------------------------------------------------------------------------------------------
def frame_levels_db(samples: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of consecutive 10 ms frames (the last one may be shorter)."""
    n = samples.size
    if n == 0:
        return np.zeros(0, np.float32)
    x = samples.astype(np.float32) / 32768.0
    full = n // FRAME_SAMPLES
    power = np.empty(full + (1 if n % FRAME_SAMPLES else 0), np.float64)
    if full:
        power[:full] = np.mean(np.square(x[: full * FRAME_SAMPLES].reshape(full, FRAME_SAMPLES)), axis=1)
    if n % FRAME_SAMPLES:
        power[-1] = np.mean(np.square(x[full * FRAME_SAMPLES:]))
    return (10.0 * np.log10(power + 1e-12)).astype(np.float32)


class LevelHistogram:
    """Histogram of frame levels (0.1 dB bins): percentiles of a recording in constant memory."""

    def __init__(self) -> None:
        self.counts = np.zeros(int(round((_DB_MAX - _DB_MIN) / _DB_STEP)) + 1, np.int64)

    def add(self, levels_db: np.ndarray) -> None:
        idx = np.clip(np.round((levels_db - _DB_MIN) / _DB_STEP), 0, self.counts.size - 1).astype(np.int64)
        self.counts += np.bincount(idx, minlength=self.counts.size)

    def percentile(self, q: float, above_db: float = -100.0) -> float:
        """q-th percentile (0-100) of the levels above `above_db`; -inf when there are none."""
        start = int(round((above_db - _DB_MIN) / _DB_STEP))
        counts = self.counts[start:]
        total = counts.sum()
        if total == 0:
            return float("-inf")
        k = int(np.searchsorted(np.cumsum(counts), q / 100.0 * total))
        return _DB_MIN + (start + min(k, counts.size - 1)) * _DB_STEP


@dataclasses.dataclass(frozen=True)
class SilenceParams:
    """Silence stripping: pauses of at least `min_pause_s` below (speech level - `threshold_db`) go,
    keeping `padding_s` of the pause next to the speech on each side."""

    min_pause_s: float = 0.5
    threshold_db: float = 35.0
    padding_s: float = 0.1
    reference_percentile: float = 95.0
    min_speech_level_db: float = -60.0  # a recording whose speech level is below this is "silent"
    enabled: bool = True

    def validate(self) -> None:
        if self.min_pause_s <= 0:
            raise ValueError("--min-pause-seconds must be > 0")
        if self.threshold_db <= 0:
            raise ValueError("--silence-threshold-db must be > 0 (dB below the speech level)")
        if self.padding_s < 0 or 2 * self.padding_s >= self.min_pause_s:
            raise ValueError("--silence-padding-seconds must be >= 0 and less than half the minimum pause")


class PauseFinder:
    """Streaming run-length detection of long silent runs over frame levels.

    Feed frame levels chunk by chunk; collects the sample ranges to remove, [start, end).
    """

    def __init__(self, threshold_db: float, params: SilenceParams):
        self.threshold_db = threshold_db
        self.min_frames = int(np.ceil(params.min_pause_s * SAMPLE_RATE / FRAME_SAMPLES))
        self.pad = int(round(params.padding_s * SAMPLE_RATE))
        self.frames_seen = 0
        self.run_start: Optional[int] = None  # frame index where the current silent run began
        self.removed: List[Tuple[int, int]] = []

    def feed(self, levels_db: np.ndarray) -> None:
        silent = levels_db < self.threshold_db
        n = silent.size
        if n == 0:
            return
        base = self.frames_seen
        if self.run_start is not None and not silent[0]:
            self._close(self.run_start, base)  # the carried run ended at the chunk boundary
            self.run_start = None
        edges = np.diff(np.concatenate(([0], silent.view(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        # only long runs matter, plus the ones touching the chunk edges (they may continue)
        keep = (ends - starts >= self.min_frames) | (starts == 0) | (ends == n)
        for s, e in zip(starts[keep].tolist(), ends[keep].tolist()):
            run_start = self.run_start if (s == 0 and self.run_start is not None) else base + s
            if e == n:
                self.run_start = run_start
            else:
                self._close(run_start, base + e)
                self.run_start = None
        self.frames_seen += n

    def close(self, total_samples: int) -> List[Tuple[int, int]]:
        """Finish at the end of the recording; returns the sample ranges to remove, in order."""
        if self.run_start is not None:
            self._close(self.run_start, self.frames_seen, total_samples)
            self.run_start = None
        return self.removed

    def _close(self, start_frame: int, end_frame: int, total_samples: Optional[int] = None) -> None:
        if end_frame - start_frame < self.min_frames:
            return
        start = start_frame * FRAME_SAMPLES
        trailing = total_samples is not None
        end = total_samples if trailing else end_frame * FRAME_SAMPLES
        cut_start = start if start == 0 else start + self.pad  # keep `pad` after speech ends
        cut_end = end if trailing else end - self.pad  # and `pad` before speech starts
        if cut_end > cut_start:
            self.removed.append((cut_start, cut_end))


def kept_intervals(removed: Sequence[Tuple[int, int]], total_samples: int) -> List[Tuple[int, int]]:
    """Complement of the removed ranges within [0, total_samples)."""
    kept, pos = [], 0
    for s, e in removed:
        if s > pos:
            kept.append((pos, s))
        pos = max(pos, e)
    if pos < total_samples:
        kept.append((pos, total_samples))
    return kept


# ---------------------------------------------------------------------------------------------
# The analysis pass: decode once, measure, strip, write the speech-only audio
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Analysis:
    """What the analysis pass learned about one recording (small metadata)."""

    decoded_s: float
    speech_s: float
    speech_samples: int
    speech_level_db: float
    threshold_db: float
    pauses_removed: int
    codec: str
    input_sample_rate: int
    channels: str
    declared_duration_s: Optional[float]
    intervals: List[Tuple[int, int]]  # kept [start, end) sample ranges of the decoded audio


def iter_file_chunks(f: BinaryIO, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    while True:
        data = f.read(chunk_samples * SAMPLE_WIDTH)
        if not data:
            return
        yield np.frombuffer(data, dtype="<i2")


def iter_frame_levels(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Levels of consecutive 10 ms frames over a chunk stream, frames never split by chunk boundaries."""
    carry = np.zeros(0, np.int16)
    for chunk in chunks:
        block = np.concatenate((carry, chunk)) if carry.size else chunk
        whole = block.size - block.size % FRAME_SAMPLES
        if whole:
            yield frame_levels_db(block[:whole])
        carry = block[whole:].copy()
    if carry.size:
        yield frame_levels_db(carry)


def strip_pauses(raw: BinaryIO, total: int, hist: "LevelHistogram", params: SilenceParams,
                 write_speech: Callable[[bytes], None], chunk_samples: int = CHUNK_SAMPLES
                 ) -> Tuple[float, float, List[Tuple[int, int]], List[Tuple[int, int]], int]:
    """The silence pass over decoded PCM in the seekable file `raw` (`total` samples, whose frame levels
    are in `hist`): the speech level, the threshold, the pauses removed, the kept intervals and the
    number of speech samples passed to `write_speech`. AudioError('silent') when there is no speech."""
    level = hist.percentile(params.reference_percentile)
    if level < params.min_speech_level_db:
        raise AudioError("silent", f"speech level {level:.1f} dBFS is below {params.min_speech_level_db} dBFS")
    threshold = level - params.threshold_db
    if params.enabled:
        finder = PauseFinder(threshold, params)
        raw.seek(0)
        for levels in iter_frame_levels(iter_file_chunks(raw, chunk_samples)):
            finder.feed(levels)
        removed = finder.close(total)
    else:
        removed = []
    intervals = kept_intervals(removed, total)
    speech = 0
    for start, end in intervals:
        raw.seek(start * SAMPLE_WIDTH)
        remaining = end - start
        while remaining:
            data = raw.read(min(remaining, chunk_samples) * SAMPLE_WIDTH)
            if not data:
                break
            write_speech(data)
            remaining -= len(data) // SAMPLE_WIDTH
            speech += len(data) // SAMPLE_WIDTH
    return level, threshold, removed, intervals, speech


def analyze_and_strip(path: str, write_speech: Callable[[bytes], None], params: SilenceParams,
                      expected_duration_s: Optional[float] = None,
                      chunk_samples: int = CHUNK_SAMPLES) -> Analysis:
    """Decode `path`, find its speech level and long pauses, and pass the speech-only PCM to
    `write_speech` in chunks. Raises AudioError for anything that cannot become training audio."""
    info = DecodeInfo()
    hist = LevelHistogram()
    with tempfile.TemporaryFile(prefix="decoded-", suffix=".s16") as raw:
        def decoded_to_temp():
            for chunk in iter_decoded(path, info, chunk_samples):
                raw.write(chunk.tobytes())
                yield chunk

        for levels in iter_frame_levels(decoded_to_temp()):
            hist.add(levels)
        check_decode(info, expected_duration_s)
        total = info.decoded_samples
        level, threshold, removed, intervals, speech = strip_pauses(raw, total, hist, params, write_speech,
                                                                    chunk_samples)
    return Analysis(
        decoded_s=total / SAMPLE_RATE, speech_s=speech / SAMPLE_RATE, speech_samples=speech,
        speech_level_db=round(level, 2), threshold_db=round(threshold, 2), pauses_removed=len(removed),
        codec=info.codec, input_sample_rate=info.input_sample_rate, channels=info.channels,
        declared_duration_s=info.declared_duration_s, intervals=intervals,
    )


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


# ---------------------------------------------------------------------------------------------
# Segments
# ---------------------------------------------------------------------------------------------
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
