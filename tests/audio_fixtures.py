"""Fixture factories for audio tests: tiny signals made with numpy, containers made with ffmpeg.

Everything is generated into a folder the test owns (tmp_path / tmp_path_factory), nothing is
downloaded. ffmpeg is always called with an argument list, never a shell string.

Signals are float arrays in [-1, 1): shape (n,) for mono, (n, channels) for multichannel.
"""
from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from pipelines.decode_ffmpeg import find_ffmpeg

SPEECH_DB = -20.0  # RMS level of the speech-like bursts, dBFS
FLOOR_DB = -60.0  # RMS level of the noise floor in pauses, dBFS


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------
def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS of float samples in [-1, 1) or int16 samples."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    if x.size == 0:
        return float("-inf")
    return float(10.0 * np.log10(np.mean(np.square(x.astype(np.float64))) + 1e-30))


def tone(freq: float, seconds: float, sample_rate: int, peak_db: float = -6.0) -> np.ndarray:
    """A sine of `freq` Hz with the given peak level."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (db_to_amplitude(peak_db) * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def noise(n: int, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise with RMS `level_db` dBFS."""
    return rng.standard_normal(n) * db_to_amplitude(level_db)


def speech_like(n: int, sample_rate: int, rng: np.random.Generator, level_db: float = SPEECH_DB,
                fade_s: float = 0.005) -> np.ndarray:
    """A "voiced" burst: harmonics of a gliding f0, amplitude-modulated at a syllable rate.

    The envelope never drops more than ~10 dB below its mean, so no 10 ms frame inside a burst looks
    like a pause (with the default 35 dB threshold); the edges get a short raised-cosine fade, which
    is what makes the onset/offset frames realistic rather than a hard step.
    """
    t = np.arange(n) / sample_rate
    f0 = 120.0 + 40.0 * rng.random() + 15.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = np.zeros(n)
    for k in range(1, 12):  # harmonics up to ~2 kHz, falling 6 dB/octave
        if k * 160.0 < sample_rate / 2:
            x += np.sin(k * phase + rng.random() * 2 * np.pi) / k
    env = 0.65 + 0.35 * np.sin(2 * np.pi * (3.0 + 2.0 * rng.random()) * t + rng.random() * 2 * np.pi)
    x *= env
    x *= db_to_amplitude(level_db) / np.sqrt(np.mean(np.square(x)))
    nf = min(int(fade_s * sample_rate), n // 2)
    if nf:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(nf) / nf)
        x[:nf] *= ramp
        x[n - nf:] *= ramp[::-1]
    return x


@dataclasses.dataclass
class BurstSignal:
    """A speech-like recording with known speech boundaries, in samples at `sample_rate`."""

    samples: np.ndarray  # float, mono
    sample_rate: int
    bursts: List[Tuple[int, int]]  # [start, end) of each burst
    pauses: List[Tuple[int, int]]  # [start, end) of each silence: leading, between bursts, trailing

    def int16(self, gain_db: float = 0.0) -> np.ndarray:
        return to_int16(self.samples * db_to_amplitude(gain_db))


def burst_signal(burst_s: Sequence[float], pause_s: Sequence[float], lead_s: float, trail_s: float,
                 sample_rate: int = 16000, seed: int = 0, speech_db: float = SPEECH_DB,
                 floor_db: float = FLOOR_DB, jitter: bool = True) -> BurstSignal:
    """Bursts of `burst_s` seconds separated by pauses of `pause_s`, after `lead_s` and before `trail_s`
    of silence; a `floor_db` noise floor runs under everything. With `jitter`, every boundary is moved
    off the 10 ms frame grid by a few samples, so the tests do not depend on lucky alignment."""
    assert len(pause_s) == len(burst_s) - 1
    rng = np.random.default_rng(seed)
    gaps = [lead_s, *pause_s, trail_s]
    lengths: List[Tuple[str, int]] = []
    for i, b in enumerate(burst_s):
        g = int(round(gaps[i] * sample_rate)) + (int(rng.integers(1, 150)) if jitter else 0)
        lengths.append(("pause", g))
        lengths.append(("burst", int(round(b * sample_rate)) + (int(rng.integers(1, 150)) if jitter else 0)))
    lengths.append(("pause", int(round(trail_s * sample_rate))))
    total = sum(n for _, n in lengths)
    x = noise(total, floor_db, rng)
    bursts, pauses, pos = [], [], 0
    for kind, n in lengths:
        if kind == "burst":
            x[pos:pos + n] += speech_like(n, sample_rate, rng, speech_db)
            bursts.append((pos, pos + n))
        else:
            pauses.append((pos, pos + n))
        pos += n
    return BurstSignal(x, sample_rate, bursts, pauses)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# WAV writing (numpy + struct, so every sample format and even a bogus codec tag can be written)
# ---------------------------------------------------------------------------------------------
WAV_FORMATS = ("u8", "s16", "s24", "s32", "f32")
_WAV_TAG_PCM, _WAV_TAG_FLOAT = 0x0001, 0x0003


def wav_bytes(x: np.ndarray, sample_rate: int, sample_format: str = "s16",
              format_tag: Optional[int] = None) -> bytes:
    """A complete RIFF/WAVE file for float samples `x` ((n,) or (n, channels))."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    channels = x.shape[1]
    x = np.clip(x, -1.0, 1.0 - 2.0 ** -31)
    if sample_format == "u8":
        data = np.clip(np.round(x * 128.0) + 128, 0, 255).astype(np.uint8).tobytes()
        bits, tag = 8, _WAV_TAG_PCM
    elif sample_format == "s16":
        data = to_int16(x).astype("<i2").tobytes()
        bits, tag = 16, _WAV_TAG_PCM
    elif sample_format == "s24":
        v = np.clip(np.round(x * 2.0 ** 23), -2 ** 23, 2 ** 23 - 1).astype("<i4")
        data = v.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()
        bits, tag = 24, _WAV_TAG_PCM
    elif sample_format == "s32":
        data = np.clip(np.round(x * 2.0 ** 31), -2 ** 31, 2 ** 31 - 1).astype("<i4").tobytes()
        bits, tag = 32, _WAV_TAG_PCM
    elif sample_format == "f32":
        data = x.astype("<f4").tobytes()
        bits, tag = 32, _WAV_TAG_FLOAT
    else:
        raise ValueError(sample_format)
    if format_tag is not None:
        tag = format_tag
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        body += b"\0"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(path: str, x: np.ndarray, sample_rate: int, sample_format: str = "s16",
              format_tag: Optional[int] = None) -> str:
    with open(path, "wb") as f:
        f.write(wav_bytes(x, sample_rate, sample_format, format_tag))
    return str(path)


def write_long_wav(path: str, block: np.ndarray, repeats: int, sample_rate: int = 16000) -> int:
    """A long 16-bit mono WAV made of `block` (int16) repeated, written block by block (bounded
    memory whatever the length). Returns the number of samples written."""
    block = np.asarray(block, dtype="<i2")
    n = block.size * repeats
    with open(path, "wb") as f:
        fmt = struct.pack("<HHIIHH", _WAV_TAG_PCM, 1, sample_rate, sample_rate * 2, 2, 16)
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + 2 * n) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 2 * n))
        raw = block.tobytes()
        for _ in range(repeats):
            f.write(raw)
    return n


# ---------------------------------------------------------------------------------------------
# Compressed formats through ffmpeg
# ---------------------------------------------------------------------------------------------
# name -> (extension, ffmpeg output arguments)
ENCODINGS: Dict[str, Tuple[str, List[str]]] = {
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "flac": (".flac", ["-c:a", "flac"]),
    "ogg_vorbis": (".ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
    "opus_webm": (".webm", ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000"]),
    "m4a_aac": (".m4a", ["-c:a", "aac", "-b:a", "128k"]),
}


def run_ffmpeg(args: Iterable[str]) -> None:
    cmd = [find_ffmpeg(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error", *args]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def encode(src: str, dst: str, encoding: str) -> str:
    """Convert the file `src` to `dst` with one of ENCODINGS (the extension of `dst` picks the container)."""
    _, args = ENCODINGS[encoding]
    run_ffmpeg(["-i", "file:" + os.path.abspath(src), *args, "file:" + os.path.abspath(dst)])
    return str(dst)


def make_audio(folder: str, name: str, x: np.ndarray, sample_rate: int, kind: str) -> str:
    """Write `x` as `kind`: a WAV sample format ('wav_s16', 'wav_f32', ...) or an ENCODINGS key."""
    if kind.startswith("wav_"):
        return write_wav(os.path.join(folder, name + ".wav"), x, sample_rate, kind[4:])
    src = write_wav(os.path.join(folder, name + ".src.wav"), x, sample_rate, "s16")
    try:
        return encode(src, os.path.join(folder, name + ENCODINGS[kind][0]), kind)
    finally:
        os.remove(src)


ALL_KINDS = tuple("wav_" + f for f in WAV_FORMATS) + tuple(ENCODINGS)


# ---------------------------------------------------------------------------------------------
# Analysis helpers
# ---------------------------------------------------------------------------------------------
def spectrum_peaks(samples: np.ndarray, sample_rate: int, count: int = 1,
                   min_separation_hz: float = 50.0) -> List[float]:
    """Frequencies (Hz) of the `count` strongest spectral peaks (Hann window, parabolic interpolation)."""
    x = np.asarray(samples, dtype=np.float64)
    x = x - x.mean()
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    hz_per_bin = sample_rate / x.size
    order = np.argsort(mag)[::-1]
    peaks: List[float] = []
    for b in order:
        if 0 < b < mag.size - 1 and all(abs(b * hz_per_bin - p) >= min_separation_hz for p in peaks):
            a, c, d = np.log(mag[b - 1] + 1e-30), np.log(mag[b] + 1e-30), np.log(mag[b + 1] + 1e-30)
            delta = 0.5 * (a - d) / (a - 2 * c + d) if (a - 2 * c + d) != 0 else 0.0
            peaks.append((b + delta) * hz_per_bin)
            if len(peaks) == count:
                break
    return peaks


def band_level_db(samples: np.ndarray, sample_rate: int, freq: float, width_hz: float = 20.0) -> float:
    """Energy (dB, relative to full-scale sine) in a band around `freq`."""
    x = np.asarray(samples, dtype=np.float64) / (32768.0 if np.asarray(samples).dtype == np.int16 else 1.0)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) / (x.size / 4)
    f = np.fft.rfftfreq(x.size, 1.0 / sample_rate)
    band = spec[(f > freq - width_hz) & (f < freq + width_hz)]
    return float(20 * np.log10(band.max() + 1e-30))


def uncovered(spans: Sequence[Tuple[int, int]], kept: Sequence[Tuple[int, int]]) -> int:
    """Samples of the `spans` that lie outside every kept interval (kept: sorted, disjoint)."""
    lost = 0
    for s, e in spans:
        covered = sum(max(0, min(e, ke) - max(s, ks)) for ks, ke in kept)
        lost += (e - s) - covered
    return lost


def covered(span: Tuple[int, int], kept: Sequence[Tuple[int, int]]) -> int:
    s, e = span
    return sum(max(0, min(e, ke) - max(s, ks)) for ks, ke in kept)
