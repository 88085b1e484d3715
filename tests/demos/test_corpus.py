"""The demo corpus: manifest contract, decodable files of the stated duration, determinism, distinct voices."""
import json
import os
import shutil

import numpy as np
import pytest

from demos import corpus as demo_corpus
from pipelines.decode import DecodeInfo, iter_decoded
from pipelines.silence import SilenceParams, analyze_and_strip
from pipelines.manifest import parse_line
from pipelines.schema import SAMPLE_RATE

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow

SPEAKERS, TAKES, SECONDS = 3, 2, 4.0
GENERATORS = [
    pytest.param("espeak", marks=pytest.mark.skipif(not shutil.which("espeak-ng"), reason="no espeak-ng")),
    "synth",
]


def _make(out_dir, generator):
    return demo_corpus.make_corpus(str(out_dir), SPEAKERS, TAKES, SECONDS, generator=generator)


def _records(manifest):
    with open(manifest, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _decode(path):
    info = DecodeInfo()
    samples = np.concatenate(list(iter_decoded(path, info)))
    return samples, info


@pytest.fixture(scope="module", params=GENERATORS)
def corpus(request, tmp_path_factory):
    """One small corpus per generator, shared by the read-only tests."""
    out = tmp_path_factory.mktemp(f"demo-{request.param}")
    return request.param, _make(out, request.param)


def test_manifest_fields_and_ids(corpus):
    generator, manifest = corpus
    records = _records(manifest)
    ids = [r["id"] for r in records]
    assert ids == sorted(f"demo-s{s:02d}-r{r:02d}" for s in range(1, 4) for r in range(1, 3))
    for rec in records:
        spk = rec["id"].split("-")[1]
        assert rec["speaker"] == rec["group"] == f"demo:{spk}"
        assert rec["recording"] == rec["id"]
        assert rec["speaker_name"].startswith(f"Voice {int(spk[1:])} (")
        assert (rec["source"], rec["license"], rec["language"]) == ("demo", "CC0-1.0, generated", "en")
        assert rec["title"] and isinstance(rec["duration_s"], float)
        assert rec["path"] == f"audio/{spk}/{rec['id']}.{rec['path'].rsplit('.', 1)[1]}"
        assert os.path.isfile(os.path.join(os.path.dirname(manifest), rec["path"]))
        parse_line(json.dumps(rec), os.path.dirname(manifest))  # the builder accepts it
    assert {r["path"].rsplit(".", 1)[1] for r in records} == set(demo_corpus.FORMATS)
    with open(os.path.join(os.path.dirname(manifest), "corpus.json"), encoding="utf-8") as f:
        assert json.load(f)["generator_used"] == generator


def test_files_decode_to_their_duration_with_mixed_rates_and_channels(corpus):
    _, manifest = corpus
    rates, channels = set(), set()
    for rec in _records(manifest):
        samples, info = _decode(os.path.join(os.path.dirname(manifest), rec["path"]))
        assert abs(samples.size / SAMPLE_RATE - rec["duration_s"]) < 0.05, rec["id"]
        assert abs(rec["duration_s"] - SECONDS) < 0.1, rec["id"]
        rates.add(info.input_sample_rate)
        channels.add(info.channels)
    assert len(rates) >= 3 and {"mono", "stereo"} <= channels


def test_pauses_are_stripped_and_floor_is_not_digital_silence(corpus):
    _, manifest = corpus
    stripped = 0
    for rec in _records(manifest):
        path = os.path.join(os.path.dirname(manifest), rec["path"])
        kept = []
        analysis = analyze_and_strip(path, kept.append, SilenceParams(), rec["duration_s"])
        assert analysis.speech_level_db > -30, rec["id"]
        stripped += analysis.pauses_removed >= 1 and analysis.speech_s < analysis.decoded_s - 0.3
    # a 4 s take can be one long sentence; most still hold a long pause for the builder to strip
    assert stripped >= SPEAKERS * TAKES // 2
    samples, _ = _decode(os.path.join(os.path.dirname(manifest), _records(manifest)[0]["path"]))
    assert np.count_nonzero(samples[: SAMPLE_RATE // 10]) > SAMPLE_RATE // 20  # the lead-in pause has noise


def _median_f0(samples):
    """Median pitch (Hz) of the voiced 40 ms frames of 16 kHz audio, by autocorrelation."""
    x = samples.astype(np.float64)
    frames = x[: x.size // 640 * 640].reshape(-1, 640)
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.mean(frames ** 2, axis=1)
    frames = frames[energy > 0.1 * energy.max()]
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2048)) ** 2)[:, :400]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    voiced = ac[np.arange(len(ac)), lag] > 0.4 * ac[:, 0]
    return float(np.median(SAMPLE_RATE / lag[voiced]))


def test_speakers_are_acoustically_distinct_and_consistent(corpus):
    """Each recording's pitch is nearest to its own speaker's other recording, whatever the format."""
    _, manifest = corpus
    pitch = {}
    for rec in _records(manifest):
        samples, _ = _decode(os.path.join(os.path.dirname(manifest), rec["path"]))
        pitch[rec["id"]] = (rec["speaker"], np.log(_median_f0(samples)))
    for rid, (speaker, f0) in pitch.items():
        nearest = min((o for o in pitch if o != rid), key=lambda o: abs(pitch[o][1] - f0))
        assert pitch[nearest][0] == speaker, (rid, nearest, {k: round(float(np.exp(v[1]))) for k, v in pitch.items()})


@pytest.mark.parametrize("generator", GENERATORS)
def test_two_generations_are_identical(tmp_path, generator):
    first, second = _make(tmp_path / "a", generator), _make(tmp_path / "b", generator)
    with open(first, "rb") as f1, open(second, "rb") as f2:
        assert f1.read() == f2.read()
    for rec in _records(first):
        with open(tmp_path / "a" / rec["path"], "rb") as f1, open(tmp_path / "b" / rec["path"], "rb") as f2:
            assert f1.read() == f2.read(), rec["id"]


def test_reuses_same_parameters_and_rebuilds_on_change(tmp_path):
    manifest = demo_corpus.make_corpus(str(tmp_path), 2, 1, 2.0, formats=("wav",), generator="synth")
    mtime = os.stat(manifest).st_mtime_ns
    assert demo_corpus.make_corpus(str(tmp_path), 2, 1, 2.0, formats=("wav",), generator="synth") == manifest
    assert os.stat(manifest).st_mtime_ns == mtime
    demo_corpus.make_corpus(str(tmp_path), 1, 1, 2.0, formats=("flac",), generator="synth")
    assert [r["path"] for r in _records(manifest)] == ["audio/s01/demo-s01-r01.flac"]
    assert sorted(os.listdir(tmp_path / "audio")) == ["s01"]  # the old speaker's files are gone
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp files left


def test_refuses_to_replace_foreign_audio_and_bad_arguments(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(FileExistsError):
        demo_corpus.make_corpus(str(tmp_path), 1, 1, 1.0, generator="synth")
    with pytest.raises(ValueError):
        demo_corpus.make_corpus(str(tmp_path / "x"), 1, 1, 1.0, formats=("aiff",))
    with pytest.raises(ValueError):
        demo_corpus.make_corpus(str(tmp_path / "x"), 0, 1, 1.0)


def test_cli_prints_the_manifest_path(tmp_path, capsys):
    out = tmp_path / "cli"
    assert demo_corpus.main(["--out", str(out), "--speakers", "1", "--recordings", "1", "--seconds", "1.5",
                             "--generator", "synth"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(out / "manifest.jsonl") and _records(printed)[0]["duration_s"] == pytest.approx(1.5, abs=0.05)


def test_auto_falls_back_to_synth_without_espeak(monkeypatch):
    monkeypatch.setattr(demo_corpus.shutil, "which", lambda name: None)
    assert demo_corpus.pick_generator("auto") == "synth"
    with pytest.raises(RuntimeError):
        demo_corpus.pick_generator("espeak")
