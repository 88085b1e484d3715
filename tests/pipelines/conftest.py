"""Fixtures of the pipelines tests: decoded-audio helpers and a speech-like signal with known pauses."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.decode import CHUNK_SAMPLES, DECODERS, DEFAULT_DECODER, AudioError, DecodeInfo, iter_decoded
from pipelines.schema import SAMPLE_RATE
from pipelines.silence import SilenceParams, analyze_and_strip
from tests import audio_fixtures as af

NO_SILENCE = SilenceParams(enabled=False)


@pytest.fixture(params=DECODERS)
def decoder(request):
    """Each decoder in turn (pipelines.decode.DECODERS): both give the same reasons for the same inputs."""
    return request.param


def decode_all(path, chunk_samples=CHUNK_SAMPLES, decoder=DEFAULT_DECODER):
    info = DecodeInfo()
    chunks = list(iter_decoded(str(path), info, chunk_samples, decoder))
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), info


def strip(path, params=SilenceParams(), **kwargs):
    """analyze_and_strip collecting the speech output; returns (Analysis, int16 speech samples, bytes)."""
    out = []
    analysis = analyze_and_strip(str(path), out.append, params, **kwargs)
    data = b"".join(out)
    return analysis, np.frombuffer(data, "<i2"), data


def reason_of(fn, *args, **kwargs):
    with pytest.raises(AudioError) as exc:
        fn(*args, **kwargs)
    return exc.value.reason, exc.value.message



PAUSES_S = [0.2, 0.3, 0.6, 1.0, 2.5]
BURSTS_S = [0.7, 1.1, 0.45, 0.9, 1.3, 0.6]
LEAD_S, TRAIL_S = 0.8, 1.2


@pytest.fixture(scope="session")
def bursts(tmp_path_factory):
    """Speech-like bursts at -20 dBFS, known pauses over a -60 dBFS floor, as a 16 kHz WAV (decodes
    bit-exactly, so the known boundaries are exact), plus the same signal 20 dB quieter."""
    folder = tmp_path_factory.mktemp("bursts")
    sig = af.burst_signal(BURSTS_S, PAUSES_S, LEAD_S, TRAIL_S, sample_rate=SAMPLE_RATE, seed=3)
    path = af.write_wav(str(folder / "bursts.wav"), sig.int16() / 32768.0, SAMPLE_RATE)
    quiet = af.write_wav(str(folder / "bursts-20dB.wav"), sig.int16(-20.0) / 32768.0, SAMPLE_RATE)
    return sig, path, quiet
