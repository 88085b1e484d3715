"""The two decoders of pipelines.decode: the choice by name, parity of the in-process PyAV decoder with the
ffmpeg command line on every fixture format and rate, its safety with odd names, its header read, and its
resampler across a format change. (The reasons for bad inputs are tested for both in test_decode.py.)
"""
from __future__ import annotations

import os
import threading

import av
import numpy as np
import pytest

from pipelines import decode, decode_pyav
from pipelines.decode import DECODERS, DEFAULT_DECODER, AudioError, DecodeInfo
from pipelines.schema import SAMPLE_RATE
from tests import audio_fixtures as af
from tests.pipelines.conftest import decode_all, reason_of

RATE = 44100
# Largest difference, in LSB, between the PyAV decoder (FFmpeg 8.1 in the av wheel) and Debian's ffmpeg 5.1
# command line. PCM, FLAC and MP3 decode to the same samples, and libswresample resamples 8/16-bit input in
# 16-bit integers in both (decode_pyav asks for it), so those are bit-exact; FFmpeg's float AAC, Opus and
# Vorbis decoders changed between the two builds in the last bit of some samples.
MAX_LSB = {"aac": 1, "opus": 1, "vorbis": 1}


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory):
    """Mono tones in every fixture format, stereo pairs in the stereo formats, WAVs at every rate tested."""
    folder = str(tmp_path_factory.mktemp("parity"))
    a = af.tone(440.0, 1.0, RATE, peak_db=-6.0)
    b = af.tone(1000.0, 1.0, RATE, peak_db=-6.0)
    files = {f"mono-{k}": af.make_audio(folder, "mono_" + k, a, RATE, k) for k in af.ALL_KINDS}
    for k in ("wav_s16", "wav_f32", "flac", "mp3", "ogg_vorbis", "opus_webm", "m4a_aac"):
        files[f"stereo-{k}"] = af.make_audio(folder, "stereo_" + k, np.stack([a, b], 1), RATE, k)
    for rate in (8000, 11025, 16000, 22050, 32000, 48000, 96000):
        files[f"rate-{rate}"] = af.write_wav(os.path.join(folder, f"r{rate}.wav"), af.tone(1000.0, 1.25, rate), rate)
    return files


PARITY_CASES = ([f"mono-{k}" for k in af.ALL_KINDS]
                + [f"stereo-{k}" for k in ("wav_s16", "wav_f32", "flac", "mp3", "ogg_vorbis", "opus_webm", "m4a_aac")]
                + [f"rate-{r}" for r in (8000, 11025, 16000, 22050, 32000, 48000, 96000)])


@pytest.mark.parametrize("case", PARITY_CASES)
def test_pyav_decodes_what_the_command_line_decodes(fixture_files, case):
    cli, cli_info = decode_all(fixture_files[case], decoder="ffmpeg")
    ours, info = decode_all(fixture_files[case], decoder="pyav")
    assert ours.size == cli.size  # the same samples at the edges (priming, padding, resampler delay)
    diff = int(np.abs(ours.astype(np.int32) - cli.astype(np.int32)).max())
    assert diff <= MAX_LSB.get(info.codec, 0), (case, info.codec, diff)
    assert (info.codec, info.input_sample_rate, info.channels) == \
        (cli_info.codec, cli_info.input_sample_rate, cli_info.channels)
    # FFmpeg 8 leaves the MP3 encoder's delay and padding out of the declared duration (1.00 s, 5.1 said 1.04 s)
    assert info.declared_duration_s == pytest.approx(cli_info.declared_duration_s, abs=0.05)
    assert info.decode_errors == cli_info.decode_errors == 0


def test_the_decoder_is_chosen_by_name():
    assert DECODERS == ("pyav", "ffmpeg") and DEFAULT_DECODER == "pyav"
    assert decode.backend("pyav") is decode_pyav
    with pytest.raises(ValueError, match="unknown decoder 'sox'"):
        decode.backend("sox")
    with pytest.raises(ValueError):
        list(decode.iter_decoded("x.wav", DecodeInfo(), decoder="sox"))
    assert decode.decoder_build("pyav") == f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"
    assert decode.decoder_build("ffmpeg").startswith("ffmpeg version ")


@pytest.mark.parametrize("name", ["-x.wav", "http:__x.wav", "pipe:0.wav", "concat:a.wav|b.wav",
                                  "a b;echo pwned $(id).wav"])
def test_odd_names_are_local_files_never_urls_or_options(tmp_path, monkeypatch, name):
    x = af.tone(440, 0.25, SAMPLE_RATE, -6.0)
    af.write_wav(str(tmp_path / name), x, SAMPLE_RATE)
    monkeypatch.chdir(tmp_path)
    samples, info = decode_all(name, decoder="pyav")  # relative path, opened by Python, read through a file object
    np.testing.assert_array_equal(samples, af.to_int16(x))
    assert info.codec == "pcm_s16le"


def test_a_protocol_name_that_is_no_file_is_missing_not_fetched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("http://127.0.0.1:9/x.mp3", "pipe:0", "file:/etc/passwd"):
        assert reason_of(decode_all, name, decoder="pyav")[0] == "missing_file"


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "audio.wav"
    os.mkfifo(fifo)
    result = {}

    def run():
        result["reason"] = reason_of(decode_all, fifo, decoder="pyav")[0]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert result.get("reason") == "not_a_file"  # opening it would have blocked for ever


def test_probe_reads_the_headers_in_process(fixture_files, tmp_path):
    for case, (codec, rate, channels) in {"mono-mp3": ("mp3", RATE, "mono"), "stereo-flac": ("flac", RATE, "stereo"),
                                          "stereo-opus_webm": ("opus", 48000, "stereo"),
                                          "stereo-wav_s16": ("pcm_s16le", RATE, "stereo")}.items():
        info = decode.probe(fixture_files[case])
        assert (info.codec, info.input_sample_rate, info.channels) == (codec, rate, channels)
        assert info.declared_duration_s == pytest.approx(1.0, abs=0.02)
        assert info.decoded_samples == 0  # nothing decoded
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n" * 100)
    assert reason_of(decode.probe, str(text))[0] == "not_audio"
    video = tmp_path / "video.mkv"
    af.run_ffmpeg(["-f", "lavfi", "-i", "color=c=black:s=16x16:d=0.2", "-c:v", "ffv1", "file:" + str(video)])
    assert reason_of(decode.probe, str(video))[0] == "not_audio"
    assert reason_of(decode.probe, str(tmp_path / "nope.mp3"))[0] == "missing_file"


def frames_of(x: np.ndarray, rate: int, layout: str, size: int = 1024):
    """Float planar frames of `x` [channels, n] at `rate`, as a decoder hands them out."""
    for start in range(0, x.shape[1], size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + size], np.float32),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        yield frame


def test_resampler_follows_a_format_change_mid_stream():
    """A stream whose rate and layout change (a concatenated MP3, a radio stream) is flushed and re-plumbed,
    as the command line does: every second of both parts comes out, at 16 kHz, in full chunks but the last."""
    first = af.tone(440.0, 1.0, 44100, -6.0)[None, :]
    second = np.stack([af.tone(880.0, 1.0, 48000, -6.0)] * 2)
    resampler = decode_pyav.MonoResampler(chunk_samples=4000)
    out = []
    for frame in list(frames_of(first, 44100, "mono")) + list(frames_of(second, 48000, "stereo")):
        out += resampler.push(frame)
    out += resampler.flush()
    total = sum(c.size for c in out)
    assert abs(total - 2 * SAMPLE_RATE) <= 2
    assert all(c.dtype == np.int16 for c in out)
    x = np.concatenate(out)
    (low,) = af.spectrum_peaks(x[1000:15000], SAMPLE_RATE, 1)
    (high,) = af.spectrum_peaks(x[17000:31000], SAMPLE_RATE, 1)
    assert low == pytest.approx(440.0, abs=1.0) and high == pytest.approx(880.0, abs=1.0)


@pytest.mark.parametrize("chunk", [1000, 4096, 1 << 18])
def test_16k_mono_int16_skips_the_graph_and_gives_what_the_graph_gives(monkeypatch, chunk):
    x = af.to_int16(af.tone(523.25, 2.3, SAMPLE_RATE, -3.0))[None, :]
    frames = []
    for start in range(0, x.shape[1], 1152):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + 1152]), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frames.append(frame)

    def run():
        resampler = decode_pyav.MonoResampler(chunk)
        out = [c for f in frames for c in resampler.push(f)] + resampler.flush()
        return resampler, out

    direct, fast = run()
    assert direct.graph is None  # no filter graph was built
    monkeypatch.setattr(decode_pyav, "PASSTHROUGH", set())
    _, through_graph = run()
    assert [c.size for c in fast] == [c.size for c in through_graph]
    assert all(c.size == chunk for c in fast[:-1])
    np.testing.assert_array_equal(np.concatenate(fast), np.concatenate(through_graph))
    np.testing.assert_array_equal(np.concatenate(fast), x[0])


def test_a_wav_without_channel_order_is_read_as_the_default_layout(fixture_files):
    """A plain WAV header gives a channel count, no order; like the command line, the count's default layout
    is assumed (so stereo is downmixed as stereo, and reported as such)."""
    info = DecodeInfo()
    list(decode.iter_decoded(fixture_files["stereo-wav_s16"], info))
    assert info.channels == "stereo"
    info = DecodeInfo()
    list(decode.iter_decoded(fixture_files["mono-wav_u8"], info))
    assert info.channels == "mono"


def test_decoding_in_two_threads_keeps_each_files_complaints_apart(tmp_path, fixture_files):
    """FFmpeg's log is captured per thread: a damaged file in one thread never marks a clean one in another."""
    data = open(fixture_files["stereo-flac"], "rb").read()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    results = {}

    def run(name, path):
        counts = []
        for _ in range(20):
            info = DecodeInfo()
            list(decode.iter_decoded(str(path), info, chunk_samples=512))
            counts.append(info.decode_errors)
        results[name] = counts

    threads = [threading.Thread(target=run, args=("clean", fixture_files["mono-mp3"])),
               threading.Thread(target=run, args=("cut", cut))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results["clean"] == [0] * 20
    assert all(c > 0 for c in results["cut"])


def test_decode_errors_are_reported_as_reasons(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + os.urandom(4000))
    with pytest.raises(AudioError) as exc:
        decode_all(garbage, decoder="pyav")
    assert exc.value.reason == "undecodable"
