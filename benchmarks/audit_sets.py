"""Test material for the acoustic checks (pipelines.quality): clean real speech and degraded copies of it.

Clean speech: LibriSpeech (202 speakers, one utterance each, 16 kHz FLAC) and FSDD (spoken digits, 8 kHz
WAV: truly narrowband). Degradations, all deterministic (seeded) and numpy only, on 16 kHz int16 signals:
- `mix_noise`: real background noise (Speech Commands' `_background_noise_`) at a given SNR, the speech power
  measured over the speech frames of the clean signal (those the silence pass keeps);
- `telephone`: a G.711-like path: the 300-3400 Hz band, 8 kHz sampling, 8-bit mu-law, back to 16 kHz (scaled
  down where the ideal filters' overshoot would clip);
- `clip`: gain over the signal's peak, clipped at full scale;
- `pad_silence`: the speech inside a longer, quiet recording (a low speech ratio).
Files are read with pipelines.decode (16 kHz mono int16); nothing is written.
"""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from pipelines.decode import DecodeInfo, iter_decoded
from pipelines.paths import real_data_dir
from pipelines.schema import SAMPLE_RATE
from pipelines.quality import SPEECH_PERCENTILE, SPEECH_RANGE_DB, ac_levels_db

DATA_DIR = real_data_dir()
FULL_SCALE = 32767.0


def load(path: str) -> np.ndarray:
    """A file as 16 kHz mono int16 (pipelines.decode)."""
    chunks = list(iter_decoded(path, DecodeInfo()))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def librispeech_files(data_dir: str = DATA_DIR) -> List[str]:
    """The FLAC of each of librispeech_202's speakers (`<speaker>/<speaker>-<chapter>-<utt>.flac`), sorted."""
    root = os.path.join(data_dir, "librispeech_202")
    out = []
    for speaker in sorted(os.listdir(root)):
        folder = os.path.join(root, speaker)
        if speaker.isdigit() and os.path.isdir(folder):
            out.extend(os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".flac"))
    return out


def fsdd_files(data_dir: str = DATA_DIR, per_speaker: int = 20, seed: int = 0) -> List[str]:
    """A seeded sample of FSDD recordings (`{digit}_{speaker}_{take}.wav`), `per_speaker` of each speaker."""
    root = os.path.join(data_dir, "fsdd", "recordings")
    by_speaker: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(root)):
        parts = name[:-4].split("_") if name.endswith(".wav") else []
        if len(parts) == 3:
            by_speaker.setdefault(parts[1], []).append(os.path.join(root, name))
    rng = np.random.default_rng(seed)
    out = []
    for speaker in sorted(by_speaker):
        files = by_speaker[speaker]
        out.extend(files[i] for i in sorted(rng.choice(len(files), min(per_speaker, len(files)), replace=False)))
    return out


def noises(data_dir: str = DATA_DIR) -> Dict[str, np.ndarray]:
    """The real background noises, by name (file stem), as 16 kHz int16."""
    root = os.path.join(data_dir, "noise")
    return {f[:-4]: load(os.path.join(root, f)) for f in sorted(os.listdir(root)) if f.endswith(".wav")}


def speech_power(speech: np.ndarray) -> float:
    """Mean power (full scale = 1) of the 10 ms frames within 35 dB of the 99th-percentile level (the speech
    frames of pipelines.quality), each frame without its DC offset (pipelines.quality.ac_levels_db)."""
    levels = ac_levels_db(speech)
    active = levels >= np.percentile(levels, SPEECH_PERCENTILE) - SPEECH_RANGE_DB
    return float(np.mean(10.0 ** (levels[active] / 10.0)))


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def mix_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`speech` plus `noise` (cut at a seeded offset, looped when shorter) at `snr_db`: speech power over its
    speech frames against the noise's mean power. A mix that would clip is scaled down as a whole."""
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, max(1, noise.size)))
    piece = np.resize(np.roll(noise.astype(np.float64), -start), speech.size)
    noise_power = float(np.mean(np.square(piece / 32768.0)))
    if noise_power <= 0:
        raise ValueError("the noise is digital silence")
    gain = np.sqrt(speech_power(speech) / (noise_power * 10.0 ** (snr_db / 10.0)))
    mix = speech.astype(np.float64) + gain * piece
    peak = np.max(np.abs(mix)) if mix.size else 0.0
    if peak > 0.99 * FULL_SCALE:
        mix *= 0.99 * FULL_SCALE / peak
    return _to_int16(mix)


def _mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law quantisation and back (G.711's curve, uniform 8-bit codes), x in [-1, 1]."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127.0) / 127.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def telephone(speech: np.ndarray, band_hz=(300.0, 3400.0)) -> np.ndarray:
    """A G.711-like telephone copy: the band `band_hz` (ideal filter), 8 kHz sampling, 8-bit mu-law, ideal
    interpolation back to 16 kHz. Numpy FFTs over the whole signal (the clips are seconds long)."""
    n = speech.size - speech.size % 2
    x = speech[:n].astype(np.float64) / 32768.0
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec[(freqs < band_hz[0]) | (freqs > band_hz[1])] = 0
    narrow = np.fft.irfft(spec, n)[::2]  # nothing above 3.4 kHz: taking every other sample does not alias
    narrow /= max(1.0, float(np.max(np.abs(narrow), initial=0.0)) / 0.99)  # the filter's overshoot must not clip
    up = np.fft.rfft(_mu_law(narrow))
    wide = np.zeros(n // 2 + 1, complex)
    wide[: up.size] = up
    out = np.fft.irfft(wide, n) * 2.0
    out /= max(1.0, float(np.max(np.abs(out), initial=0.0)) / 0.99)  # clipping would put energy above 4 kHz
    return _to_int16(out * 32768.0)


def clip(speech: np.ndarray, gain_db: float) -> np.ndarray:
    """`speech` scaled so its peak is `gain_db` above full scale, clipped at full scale."""
    peak = float(np.max(np.abs(speech.astype(np.float64)))) if speech.size else 0.0
    if peak == 0:
        raise ValueError("cannot clip digital silence")
    return _to_int16(speech.astype(np.float64) * FULL_SCALE / peak * 10.0 ** (gain_db / 20.0))


def pad_silence(speech: np.ndarray, speech_fraction: float, noise: np.ndarray, below_db: float = 50.0,
                seed: int = 0) -> np.ndarray:
    """`speech` in the middle of a recording `1 / speech_fraction` times as long, in a quiet room: `noise`
    `below_db` under the speech level throughout."""
    if not 0 < speech_fraction <= 1:
        raise ValueError("speech_fraction must be within (0, 1]")
    total = int(round(speech.size / speech_fraction))
    before = (total - speech.size) // 2
    x = np.zeros(total)
    x[before:before + speech.size] = speech
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, max(1, noise.size)))
    piece = np.resize(np.roll(noise.astype(np.float64), -start), total)
    gain = np.sqrt(speech_power(speech) / (np.mean(np.square(piece / 32768.0)) * 10.0 ** (below_db / 10.0)))
    return _to_int16(x + gain * piece)
