"""Acoustic quality of a recording, measured in one streaming pass: speech ratio, SNR, bandwidth, clipping,
loudness; and the gates that turn them into reason codes (`low_snr`, `low_speech_ratio`, `narrowband`,
`clipped`).

`QualityMeter` takes the 16 kHz mono int16 chunks of pipelines.decode in any sizes (`update`) and keeps
constant-size state: the 10 ms frame-level histogram of pipelines.silence, spectra summed per frame-level
band, and the clipping run in progress. Everything relative to the recording's own speech level (as the
silence pass) is decided at `result()`, from that state. Frames are cut at fixed positions from the start of
the recording, so the chunk sizes do not change the result. numpy only: no Beam or TensorFlow.

    meter = QualityMeter()
    for chunk in iter_decoded(path, info):   # e.g. inside analyze_and_strip's decoded_to_temp()
        meter.update(chunk)
    codes = reasons(meter.result(), QualityGates())

Levels are those of pipelines.silence (10 ms frames, its LevelHistogram) with each frame's mean removed: some
LibriSpeech recordings carry a DC offset louder than their pauses.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Mapping

import numpy as np

from pipelines.schema import SAMPLE_RATE
from pipelines.silence import FRAME_SAMPLES, LevelHistogram, SilenceParams, frame_levels_db

FFT_SIZE = 256  # 16 ms spectrum frames, 62.5 Hz bins
UNIT = 10 * FFT_SIZE  # 2560 samples = 160 ms = 16 level frames = 10 spectrum frames; the meter works in whole units
DENSE_UNITS = 8  # every spectrum frame of the first 1.28 s (a short clip still gets a spectrum) ...
SPARSE_EVERY = 2  # ... then the first frame of every other unit (5 % of the audio): the FFTs' cost stays small
BAND_DB = 3.0  # spectra are summed per 3 dB band of their frame's level, from -120 dBFS
BANDS = 41
SPEECH_PERCENTILE = 99.0  # the speech reference: the silence pass's 95th percentile falls into the pauses of a
# recording with less than ~5 % of speech (then every frame would be "speech"); the 99th holds down to 1 %
SPEECH_RANGE_DB = SilenceParams().threshold_db  # frames within 35 dB of it are speech, as the silence pass keeps
SPECTRUM_RANGE_DB = 20.0  # the spectrum of speech: frames within 20 dB of the speech level
NOISE_PERCENTILE = 10.0  # the noise floor: the level of the quietest 10 % of 10 ms frames
NOISE_FLOOR_DB = -90.0  # a floor below this (digital silence, 16-bit dither) counts as this: SNR stays finite
SNR_MAX_DB, SNR_MIN_DB = 60.0, -20.0
REFERENCE_BAND_HZ = (300.0, 3400.0)  # the telephone band: every voice has energy here
BANDWIDTH_RANGE_DB = 50.0  # bandwidth: the highest frequency within 50 dB of the reference band's density
SMOOTH_HZ = 250.0  # over 250 Hz: one tone or a notch does not decide the bandwidth
CLIP_LEVEL = 32440  # |sample| >= 99 % of full scale (-0.09 dBFS)
CLIP_RUN = 3  # ... in runs of at least 3 consecutive samples: a single peak at full scale is not clipping
SNR_MIN_SECONDS = 1.0  # the SNR gate judges recordings of at least 1 s: a shorter, pause-free clip (a trimmed
# spoken digit) shows no noise floor, only its own quiet onsets, and its estimate is a lower bound
REASONS = ("low_snr", "low_speech_ratio", "narrowband", "clipped")

_WINDOW = np.hanning(FFT_SIZE).astype(np.float32)
_WINDOW_POWER = float(np.mean(np.square(_WINDOW, dtype=np.float64)))
_BINS_HZ = np.fft.rfftfreq(FFT_SIZE, 1.0 / SAMPLE_RATE)
_REFERENCE_BINS = (_BINS_HZ >= REFERENCE_BAND_HZ[0]) & (_BINS_HZ <= REFERENCE_BAND_HZ[1])
_DB_MIN = -120.0
_LEVEL_DB = _DB_MIN + np.arange(LevelHistogram().counts.size) * 0.1  # LevelHistogram's bins (0.1 dB from -120)
_LEVEL_POWER = 10.0 ** (_LEVEL_DB / 10.0)


@dataclasses.dataclass(frozen=True)
class Quality:
    """What the meter measured over one recording."""

    duration_s: float
    speech_ratio: float  # fraction of 10 ms frames within 35 dB of the 99th-percentile level
    snr_db: float  # speech frames' mean power (less the noise) over the noise floor's, in [-20, 60] dB
    noise_floor_db: float  # dBFS of the quietest 10 % of frames (-90 at most quiet: digital silence)
    bandwidth_hz: float  # highest frequency where speech frames have energy within 50 dB of the 300-3400 Hz band
    clipped_fraction: float  # samples at full scale in runs of >= 3, over all samples
    loudness_db: float  # active speech level: mean power of the speech frames, dBFS
    speech_level_db: float  # the 95th percentile of frame levels (pipelines.silence's speech level; DC removed), dBFS

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> "Quality":
        return cls(**{f.name: float(data[f.name]) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class QualityGates:
    """Thresholds of the acoustic checks (benchmarks/audit_quality.py calibrates them on real speech); a
    recording fails a gate strictly below (above for clipping) its threshold. 0 disables a gate."""

    min_snr_db: float = 10.0
    min_speech_ratio: float = 0.25
    min_bandwidth_hz: float = 5000.0
    max_clipped_fraction: float = 0.001

    FLAGS = {"min_snr_db": "--audit-min-snr-db", "min_speech_ratio": "--audit-min-speech-ratio",
             "min_bandwidth_hz": "--audit-min-bandwidth-hz", "max_clipped_fraction": "--audit-max-clipped-fraction"}

    def validate(self) -> None:
        """ValueError naming the flag when a threshold is out of range."""
        for name, flag in self.FLAGS.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{flag} must be a finite number, got {value!r}")
        if not SNR_MIN_DB <= self.min_snr_db <= SNR_MAX_DB:
            raise ValueError(f"--audit-min-snr-db must be within [{SNR_MIN_DB:g}, {SNR_MAX_DB:g}] dB (0 disables it)")
        if not 0 <= self.min_speech_ratio <= 1:
            raise ValueError("--audit-min-speech-ratio must be within [0, 1]")
        if not 0 <= self.min_bandwidth_hz <= SAMPLE_RATE / 2:
            raise ValueError(f"--audit-min-bandwidth-hz must be within [0, {SAMPLE_RATE // 2}] Hz")
        if not 0 <= self.max_clipped_fraction <= 1:
            raise ValueError("--audit-max-clipped-fraction must be within [0, 1] (0 disables it)")

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.FLAGS}

    @classmethod
    def from_json(cls, data: Mapping) -> "QualityGates":
        unknown = set(data) - set(cls.FLAGS)
        if unknown:
            raise ValueError(f"unknown quality gate(s): {', '.join(sorted(unknown))}")
        default, values = cls(), {}
        for name, flag in cls.FLAGS.items():
            value = data.get(name, getattr(default, name))
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{flag} must be a number, got {value!r}") from None
        gates = cls(**values)
        gates.validate()
        return gates


def reasons(quality: Quality, gates: QualityGates) -> List[str]:
    """The reason codes (in REASONS' order) of the gates `quality` fails; [] when it passes them all. The SNR
    gate only judges recordings of SNR_MIN_SECONDS or more."""
    out = []
    if gates.min_snr_db and quality.snr_db < gates.min_snr_db and quality.duration_s >= SNR_MIN_SECONDS:
        out.append("low_snr")
    if gates.min_speech_ratio and quality.speech_ratio < gates.min_speech_ratio:
        out.append("low_speech_ratio")
    if gates.min_bandwidth_hz and quality.bandwidth_hz < gates.min_bandwidth_hz:
        out.append("narrowband")
    if gates.max_clipped_fraction and quality.clipped_fraction > gates.max_clipped_fraction:
        out.append("clipped")
    return out


class QualityMeter:
    """Streaming quality measures of 16 kHz mono int16 audio; memory does not depend on its length."""

    def __init__(self) -> None:
        self.levels = LevelHistogram()
        self.spectra = np.zeros((BANDS, FFT_SIZE // 2 + 1), np.float64)  # summed power spectra per level band
        self.samples = 0
        self.clipped = 0
        self.clip_run = 0  # length of the full-scale run reaching the end of what was seen
        self.carry = np.zeros(UNIT, np.int16)  # self.fill samples (less than one unit) wait for the next chunk
        self.fill = 0
        self.units = 0  # whole units measured

    def update(self, chunk: np.ndarray) -> None:
        """Measure the next `chunk` of int16 samples (any size)."""
        chunk = np.asarray(chunk)
        if chunk.dtype != np.int16 or chunk.ndim != 1:
            raise ValueError(f"QualityMeter takes 1-D int16 chunks, got {chunk.dtype} with shape {chunk.shape}")
        if chunk.size == 0:
            return
        self.samples += chunk.size
        self._count_clipping(chunk)
        if self.fill:  # complete the carried unit first (never a copy of the whole chunk)
            head = chunk[: UNIT - self.fill]
            self.carry[self.fill:self.fill + head.size] = head
            self.fill += head.size
            chunk = chunk[head.size:]
            if self.fill < UNIT:
                return
            self._measure_units(self.carry, self.levels, self.spectra)
            self.fill = 0
        whole = chunk.size - chunk.size % UNIT
        if whole:
            self._measure_units(chunk[:whole], self.levels, self.spectra)
        self.carry[: chunk.size - whole] = chunk[whole:]
        self.fill = chunk.size - whole

    def result(self) -> Quality:
        """The measures of everything fed so far (the meter can be fed on afterwards)."""
        if self.samples == 0:
            return Quality(0.0, 0.0, SNR_MIN_DB, NOISE_FLOOR_DB, 0.0, 0.0, _DB_MIN, _DB_MIN)
        hist, spectra = LevelHistogram(), self.spectra.copy()
        hist.counts = self.levels.counts.copy()
        if self.fill >= FRAME_SAMPLES:  # the last, partial unit: its whole frames (spectra only in a short clip)
            if self.units < DENSE_UNITS:
                self._measure_units(self.carry[: self.fill], hist, spectra)
            else:
                hist.add(ac_levels_db(self.carry[: self.fill]))
        clipped = self.clipped + (self.clip_run if self.clip_run >= CLIP_RUN else 0)
        centres, power = _LEVEL_DB, _LEVEL_POWER
        reference = hist.percentile(SPEECH_PERCENTILE, above_db=_DB_MIN)
        speech_level = hist.percentile(SilenceParams().reference_percentile, above_db=_DB_MIN)
        speech = centres >= reference - SPEECH_RANGE_DB
        frames = max(int(hist.counts.sum()), 1)
        speech_frames = int(hist.counts[speech].sum())
        speech_power = float((hist.counts[speech] * power[speech]).sum() / max(speech_frames, 1))
        noise_db = max(hist.percentile(NOISE_PERCENTILE, above_db=_DB_MIN), NOISE_FLOOR_DB)
        noise_power = 10.0 ** (noise_db / 10.0)
        # the speech frames hold speech + noise: take the noise out; at least SNR_MIN_DB
        clean = max(speech_power - noise_power, noise_power * 10 ** (SNR_MIN_DB / 10))
        snr = min(SNR_MAX_DB, 10.0 * math.log10(clean / noise_power))
        return Quality(
            duration_s=round(self.samples / SAMPLE_RATE, 3),
            speech_ratio=round(speech_frames / frames, 4),
            snr_db=round(snr, 2),
            noise_floor_db=round(noise_db, 2),
            bandwidth_hz=round(bandwidth_hz(spectra, reference), 1),
            clipped_fraction=round(clipped / self.samples, 6),
            loudness_db=round(10.0 * math.log10(max(speech_power, 1e-12)), 2),
            speech_level_db=round(speech_level, 2),
        )

    # -----------------------------------------------------------------------------------------------
    def _measure_units(self, block: np.ndarray, hist: LevelHistogram, spectra: np.ndarray) -> None:
        """Level frames and spectrum frames of `block`: whole units from unit number `self.units` on, or the
        last, partial unit (at `result`, into copies: then `self.units` does not move)."""
        hist.add(ac_levels_db(block))
        per_unit = UNIT // FFT_SIZE
        if block.size >= UNIT:
            frames = block.reshape(-1, per_unit, FFT_SIZE)
        else:
            frames = block[: block.size - block.size % FFT_SIZE].reshape(1, -1, FFT_SIZE)
        dense = max(0, min(frames.shape[0], DENSE_UNITS - self.units))
        first = dense + (-(self.units + dense)) % SPARSE_EVERY  # the next unit whose number is a multiple
        sparse = frames[first::SPARSE_EVERY, :1] if frames.shape[1] else frames[:0]
        x = np.concatenate((frames[:dense].reshape(-1, FFT_SIZE), sparse.reshape(-1, FFT_SIZE))).astype(np.float32)
        if block.size >= UNIT:
            self.units += frames.shape[0]
        if x.shape[0] == 0:
            return
        x *= _WINDOW
        spectrum = np.fft.rfft(x, axis=1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)  # (2^15 x full scale)^2 units
        # the frame's level from its spectrum (Parseval), without the DC bin: a DC offset is not sound
        total = power.sum(axis=1, dtype=np.float64) - power[:, 0]
        level = 10.0 * np.log10(2.0 * total / FFT_SIZE ** 2 / _WINDOW_POWER / 32768.0 ** 2 + 1e-12)
        band = np.clip(((level - _DB_MIN) // BAND_DB).astype(np.int64), 0, BANDS - 1)
        order = np.argsort(band, kind="stable")
        bands, starts = np.unique(band[order], return_index=True)
        spectra[bands] += np.add.reduceat(power[order], starts, axis=0)  # each frame's spectrum to its band's

    def _count_clipping(self, chunk: np.ndarray) -> None:
        """Samples in runs of >= CLIP_RUN at full scale; a run may continue across chunks."""
        if not self.clip_run and -CLIP_LEVEL < chunk.min() and chunk.max() < CLIP_LEVEL:
            return  # nearly every chunk: two fast passes
        at_full = np.abs(chunk.astype(np.int32)) >= CLIP_LEVEL
        edges = np.diff(np.concatenate(([0], at_full.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if starts.size == 0:
            if self.clip_run >= CLIP_RUN:
                self.clipped += self.clip_run
            self.clip_run = 0
            return
        lengths = ends - starts
        if starts[0] == 0:  # continues the run carried from the previous chunk
            lengths[0] += self.clip_run
        elif self.clip_run >= CLIP_RUN:
            self.clipped += self.clip_run
        if ends[-1] == chunk.size:  # may go on in the next chunk
            self.clip_run = int(lengths[-1])
            lengths = lengths[:-1]
        else:
            self.clip_run = 0
        self.clipped += int(lengths[lengths >= CLIP_RUN].sum())


def ac_levels_db(samples: np.ndarray) -> np.ndarray:
    """pipelines.silence.frame_levels_db of each whole 10 ms frame (without its mean, as it measures)."""
    return frame_levels_db(samples[: samples.size - samples.size % FRAME_SAMPLES])


def bandwidth_hz(spectra: np.ndarray, speech_level_db: float) -> float:
    """Highest frequency where the summed spectrum of the frames within SPECTRUM_RANGE_DB of `speech_level_db`
    (`spectra`: per BAND_DB level band), smoothed over SMOOTH_HZ, is within BANDWIDTH_RANGE_DB of its mean
    density in REFERENCE_BAND_HZ; 0 without such frames."""
    lowest = int(max(0, (speech_level_db - SPECTRUM_RANGE_DB - _DB_MIN) // BAND_DB))
    spectrum = spectra[lowest:].sum(axis=0)
    reference = spectrum[_REFERENCE_BINS].mean()
    if reference <= 0:
        return 0.0
    # each bin's value: the mean over SMOOTH_HZ upwards from it, which offsets the window's leakage past an edge
    width = max(1, int(round(SMOOTH_HZ / _BINS_HZ[1])))
    ends = np.minimum(np.arange(spectrum.size) + width, spectrum.size)
    cumulative = np.concatenate(([0.0], np.cumsum(spectrum)))
    smooth = (cumulative[ends] - cumulative[:-1]) / (ends - np.arange(spectrum.size))
    above = np.flatnonzero(smooth >= reference * 10 ** (-BANDWIDTH_RANGE_DB / 10))
    return float(_BINS_HZ[above[-1]]) if above.size else 0.0


def measure(samples: np.ndarray, chunk_samples: int = 1 << 18) -> Quality:
    """The quality of a whole int16 signal (fed to a QualityMeter in chunks)."""
    meter = QualityMeter()
    for start in range(0, max(samples.size, 1), chunk_samples):
        meter.update(samples[start:start + chunk_samples])
    return meter.result()
