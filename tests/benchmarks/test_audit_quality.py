"""benchmarks.audit_sets (degraded copies of speech) and benchmarks.audit_quality (the gates' table), on
generated audio: no real-data folder needed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import audit_quality, audit_sets
from benchmarks.short_clips import write_flac
from pipelines.decode import write_wav
from pipelines.quality import ac_levels_db

SR = 16000


def speech(seconds=4.0, seed=0):
    """Bursts of partials (200 Hz - 7 kHz) with pauses of faint noise, about -20 dBFS, as int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (k + 1) for k, f in enumerate((180, 420, 1300, 3100, 6500)))
    x *= (np.sin(2 * np.pi * 1.5 * t) > -0.3)  # pauses
    x = x / np.max(np.abs(x)) * 0.3 + rng.standard_normal(t.size) * 1e-4
    return np.round(x * 32767).astype(np.int16)


def noise(seconds=3.0, seed=5):
    return np.round(np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 3000).astype(np.int16)


def power_db(x):
    return 10 * np.log10(np.mean((x.astype(np.float64) / 32768) ** 2))


@pytest.mark.parametrize("snr", [0, 10, 20])
def test_mix_noise_adds_noise_at_the_requested_snr(snr):
    clean = speech()
    mixed = audit_sets.mix_noise(clean, noise(), snr, seed=3)
    added = mixed.astype(np.float64) - clean
    assert audit_sets.speech_power(clean) / np.mean((added / 32768) ** 2) == pytest.approx(10 ** (snr / 10), rel=0.02)
    assert np.array_equal(mixed, audit_sets.mix_noise(clean, noise(), snr, seed=3))  # seeded: the same copy
    assert not np.array_equal(mixed, audit_sets.mix_noise(clean, noise(), snr, seed=4))


def test_telephone_keeps_only_the_telephone_band():
    clean = speech()
    tel = audit_sets.telephone(clean).astype(np.float64)
    spec = np.abs(np.fft.rfft(tel)) ** 2
    freqs = np.fft.rfftfreq(tel.size, 1 / SR)
    assert spec[freqs > 4000].sum() < 1e-6 * spec.sum()  # nothing survives 8 kHz sampling
    assert spec[(freqs > 3400) & (freqs <= 4000)].sum() < 1e-2 * spec.sum()  # mu-law noise only
    assert abs(power_db(tel.astype(np.int16)) - power_db(clean)) < 6  # the speech band is still there


def test_clip_and_pad_silence():
    clean = speech()
    clipped = audit_sets.clip(clean, 12)
    assert clipped.max() == 32767 and np.mean(np.abs(clipped.astype(np.int32)) >= 32767) > 0.01
    padded = audit_sets.pad_silence(clean, 0.2, noise())
    assert padded.size == clean.size * 5
    start = (padded.size - clean.size) // 2
    outside = np.concatenate((padded[:start], padded[start + clean.size:]))
    assert power_db(outside) == pytest.approx(10 * np.log10(audit_sets.speech_power(clean)) - 50, abs=1)
    levels = ac_levels_db(padded)
    assert np.mean(levels > levels.max() - 35) < 0.25  # speech in less than a quarter of the frames


def test_the_audit_writes_its_table_for_a_generated_data_folder(tmp_path, capsys):
    data = tmp_path / "data"
    for i, spk in enumerate(("11", "22", "33")):
        (data / "librispeech_202" / spk).mkdir(parents=True)
        write_flac(str(data / "librispeech_202" / spk / f"{spk}-1-0000.flac"), speech(4.0, seed=i))
    (data / "fsdd" / "recordings").mkdir(parents=True)
    for i in range(4):  # 8 kHz originals: decoded to 16 kHz, nothing above 4 kHz
        write_wav(str(data / "fsdd" / "recordings" / f"{i}_ann_{i}.wav"), speech(1.5, seed=10 + i)[::2], 8000)
    (data / "noise").mkdir()
    write_wav(str(data / "noise" / "hum.wav"), noise())
    out = tmp_path / "audit.json"
    assert audit_quality.main(["--data", str(data), "--output", str(out), "--no-cost", "--fsdd-per-speaker", "3"]) == 0
    result = json.loads(out.read_text())
    rows = result["conditions"]
    assert rows["librispeech clean"]["files"] == 3 and rows["fsdd clean (8 kHz)"]["files"] == 3
    assert rows["librispeech clean"]["any"] == 0
    assert rows["librispeech noise:hum:0dB"]["flagged"]["low_snr"] == 1.0
    assert rows["librispeech telephone"]["flagged"]["narrowband"] == 1.0
    assert rows["librispeech clip:+20dB"]["flagged"]["clipped"] == 1.0
    assert rows["librispeech padded:10%speech"]["flagged"]["low_speech_ratio"] == 1.0
    assert result["false_alarms"]["fsdd_narrowband_found"] == 1.0
    assert "librispeech telephone" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        audit_quality.main(["--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit):
        audit_quality.main(["--data", str(data), "--gates", '{"min_snr_db": "x"}'])
