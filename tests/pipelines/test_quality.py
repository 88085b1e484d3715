"""pipelines.quality: the streaming quality measures on signals of known SNR, bandwidth, clipping and speech
fraction, the gates and their reason codes, and (where the real-data folder exists) real speech and its degraded copies."""
from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from pipelines.quality import CLIP_LEVEL, Quality, QualityGates, QualityMeter, measure, reasons
from tests.conftest import SHARED_DATA

SR = 16000
REPO = Path(__file__).resolve().parents[2]


def tones(seconds: float, seed: int = 0, level_db: float = -20.0) -> np.ndarray:
    """Speech-like: partials from 200 Hz to 7 kHz (wideband) with a syllable-rate envelope, about `level_db` dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / (k + 1) for k, f in enumerate((200, 450, 1100, 2900, 5300, 7100)))
    x = x * (0.7 + 0.3 * np.sin(2 * np.pi * 4 * t))
    return x / np.sqrt(np.mean(x ** 2)) * 10 ** (level_db / 20)


def speech_with_pauses(speech_s=(1.0, 1.5, 0.8, 1.2), pause_s=(0.6, 0.9, 0.5, 0.7), seed=0) -> np.ndarray:
    parts = []
    for i, (s, p) in enumerate(zip(speech_s, pause_s)):
        parts += [tones(s, seed + i), np.zeros(int(p * SR))]
    return np.concatenate(parts)


def lowpass_noise(seconds: float, cutoff_hz: float, seed: int = 0, level_db: float = -25.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / SR) > cutoff_hz] = 0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x ** 2)) * 10 ** (level_db / 20)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def with_noise(clean: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """White noise at `snr_db` below the power of the speech (the non-zero samples' frames)."""
    frames = clean[: clean.size // 160 * 160].reshape(-1, 160)
    active = np.mean(frames ** 2, axis=1) > 0
    speech_power = np.mean(frames[active] ** 2)
    noise = np.random.default_rng(seed).standard_normal(clean.size) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return clean + noise


@pytest.mark.parametrize("snr_db", [0, 5, 10, 20, 30])
def test_snr_estimate_is_within_a_few_db_of_the_truth(snr_db):
    q = measure(to_int16(with_noise(speech_with_pauses(), snr_db)))
    assert abs(q.snr_db - snr_db) < 2.5, q


def test_digital_silence_pauses_give_a_high_capped_snr_not_infinity():
    q = measure(to_int16(speech_with_pauses()))
    assert 40 <= q.snr_db <= 60 and q.noise_floor_db == -90.0
    assert json.dumps(q.to_json())  # finite: valid JSON
    assert reasons(q, QualityGates()) == []


def test_a_dc_offset_is_neither_noise_nor_speech():
    x = to_int16(with_noise(speech_with_pauses(), 30) + 0.25)  # a quarter of full scale of offset, like real files
    plain = measure(to_int16(with_noise(speech_with_pauses(), 30)))
    q = measure(x)
    assert abs(q.snr_db - plain.snr_db) < 1 and abs(q.speech_ratio - plain.speech_ratio) < 0.01


def test_bandwidth_of_low_passed_and_full_band_noise():
    narrow = measure(to_int16(lowpass_noise(4.0, 3400)))
    full = measure(to_int16(lowpass_noise(4.0, 8000)))
    assert 3350 <= narrow.bandwidth_hz <= 3650, narrow  # the window's leakage at 50 dB: < 0.25 kHz
    assert full.bandwidth_hz >= 7800, full
    assert "narrowband" in reasons(narrow, QualityGates()) and "narrowband" not in reasons(full, QualityGates())


def test_clipping_is_found_only_in_flat_runs_at_full_scale():
    x = to_int16(speech_with_pauses())
    peaks = x.copy()
    peaks[[1000, 5000, 9000, 20000]] = [32767, -32768, 32767, 32767]  # single samples at full scale
    peaks[30000:30002] = 32767  # a run of 2
    assert measure(x).clipped_fraction == 0 and measure(peaks).clipped_fraction == 0
    loud = speech_with_pauses() * 10 ** (20 / 20)  # +20 dB over -20 dBFS: peaks far over full scale
    clipped = to_int16(np.clip(loud, -1, 1))
    q = measure(clipped)
    runs = [len(list(g)) for full, g in itertools.groupby(np.abs(clipped.astype(np.int32)) >= CLIP_LEVEL) if full]
    truth = sum(r for r in runs if r >= 3) / clipped.size  # samples in runs of 3 or more within 1 % of full scale
    assert q.clipped_fraction == pytest.approx(truth, abs=1e-6) and q.clipped_fraction > 0.01
    assert reasons(q, QualityGates()) == ["clipped"]


def test_speech_ratio_matches_the_known_fraction():
    speech_s, pause_s = (1.0, 1.5, 0.8, 1.2), (0.6, 0.9, 0.5, 0.7)
    x = to_int16(with_noise(speech_with_pauses(speech_s, pause_s), 40))
    truth = sum(speech_s) / (sum(speech_s) + sum(pause_s))
    assert measure(x).speech_ratio == pytest.approx(truth, abs=0.02)
    mostly_silent = to_int16(with_noise(speech_with_pauses((0.5,), (9.5,)), 40))
    q = measure(mostly_silent)
    assert q.speech_ratio == pytest.approx(0.05, abs=0.01)
    assert reasons(q, QualityGates()) == ["low_speech_ratio"]


@pytest.mark.parametrize("chunk", [1000, 1, 2560, 2561, 70001])
def test_streaming_gives_the_one_shot_result(chunk):
    x = to_int16(np.concatenate([with_noise(speech_with_pauses(), 15), np.clip(tones(0.5) * 40, -1, 1)]))
    if chunk == 1:
        x = x[-30000:]  # a sample at a time: keep it short (with the clipped end)
    whole = QualityMeter()
    whole.update(x)
    streamed = QualityMeter()
    for start in range(0, x.size, chunk):
        streamed.update(x[start:start + chunk])
    a, b = whole.result(), streamed.result()
    for name, value in a.to_json().items():
        assert getattr(b, name) == pytest.approx(value, rel=1e-6, abs=1e-6), name
    assert a.clipped_fraction > 0


def test_memory_does_not_grow_with_the_length():
    chunk = to_int16(with_noise(speech_with_pauses(), 20))

    def peak_after(chunks: int) -> int:
        meter = QualityMeter()
        tracemalloc.start()
        for _ in range(chunks):
            meter.update(chunk)
        meter.result()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    short, long = peak_after(3), peak_after(60)  # 17 s against 5.6 min
    assert long < short * 1.2 + 50_000


def test_empty_and_wrong_input():
    assert QualityMeter().result().duration_s == 0
    with pytest.raises(ValueError, match="int16"):
        QualityMeter().update(np.zeros(10, np.float32))


def test_gates_validate_and_round_trip():
    gates = QualityGates(min_snr_db=12.0, min_speech_ratio=0.2, min_bandwidth_hz=4000.0, max_clipped_fraction=0.01)
    assert QualityGates.from_json(json.loads(json.dumps(gates.to_json()))) == gates
    assert QualityGates.from_json({}) == QualityGates()
    QualityGates().validate()
    for bad, flag in [({"min_speech_ratio": 1.5}, "--audit-min-speech-ratio"), ({"min_bandwidth_hz": 9000}, "--audit-min-bandwidth-hz"),
                      ({"max_clipped_fraction": -1}, "--audit-max-clipped-fraction"), ({"min_snr_db": 99}, "--audit-min-snr-db")]:
        with pytest.raises(ValueError, match=flag):
            QualityGates.from_json(bad)
    with pytest.raises(ValueError, match='--audit-min-snr-db must be a number'):
        QualityGates.from_json({'min_snr_db': 'ten'})
    with pytest.raises(ValueError, match="unknown quality gate"):
        QualityGates.from_json({"min_snr": 3})
    q = Quality(duration_s=5, speech_ratio=0.1, snr_db=3, noise_floor_db=-30, bandwidth_hz=3500,
                clipped_fraction=0.02, loudness_db=-20, speech_level_db=-18)
    assert reasons(q, QualityGates()) == ["low_snr", "low_speech_ratio", "narrowband", "clipped"]
    off = QualityGates(min_snr_db=0, min_speech_ratio=0, min_bandwidth_hz=0, max_clipped_fraction=0)
    assert reasons(q, off) == []
    short = Quality.from_json(dict(q.to_json(), duration_s=0.6))  # too short to show a noise floor
    assert reasons(short, QualityGates()) == ["low_speech_ratio", "narrowband", "clipped"]
    assert Quality.from_json(q.to_json()) == q


REAL = SHARED_DATA / "librispeech_202"


def test_real_speech_clean_passes_and_its_degraded_copies_are_flagged():
    """Synthetic part always; the real part where the real-data folder exists."""
    assert reasons(measure(to_int16(speech_with_pauses())), QualityGates()) == []
    if not (REAL.is_dir() and (SHARED_DATA / "noise").is_dir()):
        pytest.skip(f"{SHARED_DATA} is absent: the real-speech part is skipped")
    from benchmarks import audit_sets as sets

    files = sets.librispeech_files(str(SHARED_DATA))[:6]
    noise = sets.noises(str(SHARED_DATA))["running_tap"]
    for i, path in enumerate(files):
        clean = sets.load(path)
        assert reasons(measure(clean), QualityGates()) == [], path
        assert "low_snr" in reasons(measure(sets.mix_noise(clean, noise, 0, seed=i)), QualityGates())
        assert "narrowband" in reasons(measure(sets.telephone(clean)), QualityGates())
        assert "clipped" in reasons(measure(sets.clip(clean, 20)), QualityGates())
        mixed = measure(sets.mix_noise(clean, noise, 10, seed=i))
        assert abs(mixed.snr_db - 10) < 3, (path, mixed)


def test_the_meter_imports_neither_beam_nor_tensorflow():
    code = "import sys, pipelines.quality; print(sorted({m.split('.')[0] for m in sys.modules}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(ast.literal_eval(proc.stdout.strip().splitlines()[-1]))
    assert "numpy" in loaded and not loaded & {"apache_beam", "tensorflow", "av", "trainer"}
