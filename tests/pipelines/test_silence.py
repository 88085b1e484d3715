"""pipelines.silence: pauses stripped against known boundaries, streaming invariants, memory on long files.

Run with `-s` to see the measured numbers (speech lost, peak RSS, runtimes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pipelines.schema import SAMPLE_RATE
from tests import audio_fixtures as af
from tests.pipelines.conftest import strip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipelines import silence
from pipelines.silence import PauseFinder, SilenceParams, frame_levels_db, kept_intervals

FRAME = silence.FRAME_SAMPLES


# =============================================================================================
# 3. Silence stripping against known boundaries
# =============================================================================================


def silent_runs_s(samples, threshold_db):
    """Lengths (s) of runs of 10 ms frames below `threshold_db` in `samples`."""
    silent = frame_levels_db(samples) < threshold_db
    edges = np.diff(np.concatenate(([0], silent.astype(np.int8), [0])))
    return ((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) * FRAME / SAMPLE_RATE).tolist()


def test_silence_stripping_against_known_boundaries(bursts):
    sig, path, _ = bursts
    params = SilenceParams()
    analysis, speech, _ = strip(path, params)
    original = sig.int16()
    kept = analysis.intervals

    # speech is never cut
    lost = af.uncovered(sig.bursts, kept)
    print(f"\nspeech lost: {lost} samples = {lost * 1000 / SAMPLE_RATE:.3f} ms "
          f"of {sum(e - s for s, e in sig.bursts) * 1000 / SAMPLE_RATE:.0f} ms; kept intervals {kept}")
    assert lost == 0

    # the output is exactly the original's kept intervals, in order
    np.testing.assert_array_equal(speech, np.concatenate([original[s:e] for s, e in kept]))
    assert analysis.speech_samples == speech.size == sum(e - s for s, e in kept)
    assert analysis.decoded_s == original.size / SAMPLE_RATE

    pad = params.padding_s
    lead, *middle, trail = sig.pauses
    kept_s = [af.covered(p, kept) / SAMPLE_RATE for p in middle]
    print("pauses (s):", [round((e - s) / SAMPLE_RATE, 4) for s, e in middle], "-> kept (s):",
          [round(k, 4) for k in kept_s])
    for (s, e), k in zip(middle, kept_s):
        length = (e - s) / SAMPLE_RATE
        if length < params.min_pause_s:
            assert af.covered((s, e), kept) == e - s  # short pauses stay whole
        else:  # long pauses shrink to the padding on both sides (+- one 10 ms frame per side)
            assert k == pytest.approx(2 * pad, abs=2 * FRAME / SAMPLE_RATE + 1e-9)
    assert af.covered(lead, kept) / SAMPLE_RATE == pytest.approx(pad, abs=FRAME / SAMPLE_RATE)
    assert af.covered(trail, kept) / SAMPLE_RATE == pytest.approx(pad, abs=FRAME / SAMPLE_RATE)
    assert analysis.pauses_removed == 2 + sum(1 for s, e in middle if (e - s) / SAMPLE_RATE >= params.min_pause_s)

    # no silent run as long as min_pause_s remains, by the known boundaries ...
    for pause in sig.pauses:
        assert af.covered(pause, kept) / SAMPLE_RATE < params.min_pause_s
    # ... and by measuring the output itself
    assert max(silent_runs_s(speech, analysis.threshold_db)) < params.min_pause_s

    # the speech level is the bursts' loud frames, the threshold 35 dB under it
    assert -20.0 < analysis.speech_level_db < -14.0
    assert analysis.threshold_db == pytest.approx(analysis.speech_level_db - 35.0, abs=0.01)
    expected_s = (sum(e - s for s, e in sig.bursts) + sum(af.covered(p, kept) for p in sig.pauses)) / SAMPLE_RATE
    assert analysis.speech_s == pytest.approx(expected_s)


def test_other_silence_params_against_known_boundaries(bursts):
    sig, path, _ = bursts
    params = SilenceParams(min_pause_s=0.8, padding_s=0.25)
    analysis, _, _ = strip(path, params)
    assert af.uncovered(sig.bursts, analysis.intervals) == 0
    for s, e in sig.pauses[1:-1]:
        k = af.covered((s, e), analysis.intervals) / SAMPLE_RATE
        if (e - s) / SAMPLE_RATE < 0.8:  # 0.2, 0.3 and now 0.6 s stay whole
            assert k == (e - s) / SAMPLE_RATE
        else:
            assert k == pytest.approx(0.5, abs=0.02 + 1e-9)
    assert analysis.pauses_removed == 4  # lead, 1.0, 2.5, trail


def test_threshold_is_relative_to_the_recording_level(bursts):
    sig, path, quiet = bursts
    loud, loud_speech, _ = strip(path)
    soft, soft_speech, _ = strip(quiet)
    assert soft.speech_level_db == pytest.approx(loud.speech_level_db - 20.0, abs=0.2)
    assert soft.threshold_db == pytest.approx(loud.threshold_db - 20.0, abs=0.2)
    assert soft.intervals == loud.intervals
    assert soft.speech_samples == loud.speech_samples
    assert af.uncovered(sig.bursts, soft.intervals) == 0


def test_a_dc_offset_does_not_hide_the_pauses(bursts, tmp_path):
    """The same bursts over a DC offset of -0.25 full scale (louder than the pauses, as in some LibriSpeech
    recordings): the frame levels leave the offset out, so the same pauses go."""
    sig, path, _ = bursts
    shifted = af.write_wav(str(tmp_path / "dc.wav"), sig.int16() / 32768.0 - 0.25, SAMPLE_RATE)
    plain, plain_speech, _ = strip(path)
    offset, _, _ = strip(shifted)
    assert offset.pauses_removed == plain.pauses_removed > 0
    assert offset.intervals == plain.intervals and af.uncovered(sig.bursts, offset.intervals) == 0
    levels = frame_levels_db(np.full(1600, -8192, np.int16))
    assert levels.max() < -100  # a constant is silence, whatever its value


def test_silence_params_validate():
    SilenceParams().validate()
    for bad in (dict(min_pause_s=0), dict(threshold_db=0), dict(padding_s=-0.1), dict(padding_s=0.25),
                dict(min_pause_s=0.4, padding_s=0.2)):
        with pytest.raises(ValueError):
            SilenceParams(**bad).validate()


def _feed(finder, levels, chunk):
    for i in range(0, levels.size, chunk):
        finder.feed(levels[i:i + chunk])


def reference_removed(silent, total_samples, params):
    """The pause-removal rule written out plainly over the whole recording at once."""
    min_frames = int(np.ceil(params.min_pause_s * SAMPLE_RATE / FRAME))
    pad = int(round(params.padding_s * SAMPLE_RATE))
    removed, i, n = [], 0, len(silent)
    while i < n:
        if not silent[i]:
            i += 1
            continue
        j = i
        while j < n and silent[j]:
            j += 1
        if j - i >= min_frames:
            start = i * FRAME
            end = total_samples if j == n else j * FRAME
            cut_start = start if i == 0 else start + pad
            cut_end = end if j == n else end - pad
            if cut_end > cut_start:
                removed.append((cut_start, cut_end))
        i = j
    return removed


def test_pause_finder_chunk_sizes_give_identical_results(bursts):
    sig, _, _ = bursts
    levels = frame_levels_db(sig.int16())
    params = SilenceParams()
    threshold = float(np.percentile(levels, 95)) - params.threshold_db
    results = {}
    for chunk in (1, 7, 49, 50, 51, 1000, levels.size):
        finder = PauseFinder(threshold, params)
        _feed(finder, levels, chunk)
        results[chunk] = finder.close(sig.samples.size)
    assert len(results[levels.size]) == 5
    assert all(r == results[levels.size] for r in results.values()), results
    assert results[levels.size] == reference_removed(levels < threshold, sig.samples.size, params)


def test_pause_finder_random_patterns_and_chunkings():
    """Property test: runs of every length around min_pause, starting/ending at chunk edges, at the
    file's start and end, fed in random chunkings, match the plain whole-recording rule."""
    rng = np.random.default_rng(1234)
    params = SilenceParams()  # min 50 frames, pad 1600 samples
    for trial in range(300):
        pieces, silent_now = [], bool(rng.integers(2))
        while sum(len(p) for p in pieces) < 400:
            length = int(rng.choice([1, 2, 5, 30, 49, 50, 51, 52, 80, 120, 200]))
            pieces.append([silent_now] * length)
            silent_now = not silent_now
        silent = np.array([s for p in pieces for s in p])
        levels = np.where(silent, -70.0, -15.0).astype(np.float32)
        total = silent.size * FRAME - int(rng.integers(0, FRAME))  # a short last frame
        expected = reference_removed(silent, total, params)
        for _ in range(4):
            finder = PauseFinder(-50.0, params)
            i = 0
            while i < levels.size:
                step = int(rng.choice([1, 2, 3, 7, 49, 50, 51, 64, 1000]))
                finder.feed(levels[i:i + step])
                finder.feed(levels[0:0])  # empty chunks are harmless
                i += step
            assert finder.close(total) == expected, (trial, silent.astype(int).tolist())


def test_analyze_and_strip_chunk_size_does_not_change_output(bursts):
    _, path, _ = bursts
    default, _, data = strip(path)
    for chunk in (7, 160, 161, 4096):
        analysis, _, tiny = strip(path, chunk_samples=chunk)
        assert tiny == data, chunk  # byte-identical speech
        assert analysis == default


def test_kept_intervals():
    assert kept_intervals([], 100) == [(0, 100)]
    assert kept_intervals([(0, 10), (20, 30), (90, 100)], 100) == [(10, 20), (30, 90)]
    assert kept_intervals([(5, 100)], 100) == [(0, 5)]
    assert kept_intervals([(0, 100)], 100) == []


# =============================================================================================
# 6. Streaming memory: a 1 hour file needs no more memory than a 5 minute one
# =============================================================================================
# Measured in a process forked from a small Python, not in the direct child of pytest: Linux carries
# ru_maxrss across fork+exec (the child starts as a copy of the parent's pages and exec records that
# high-water mark), so a child of a 100+ MB pytest would report pytest's size, not its own.
MEASURE = textwrap.dedent("""
    import json, os, resource, sys, time
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        from pipelines import silence
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        written = [0]
        def write(data):
            written[0] += len(data)
        t0 = time.perf_counter()
        a = silence.analyze_and_strip(sys.argv[1], write, silence.SilenceParams())
        os.write(w, json.dumps({
            "seconds": time.perf_counter() - t0, "rss_before_kb": before,
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "ffmpeg_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            "decoded_s": a.decoded_s, "speech_samples": a.speech_samples, "written": written[0],
            "pauses_removed": a.pauses_removed, "intervals": len(a.intervals)}).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print(out)
""")


def measure(path, tmp):
    env = dict(os.environ, PYTHONPATH=REPO, TMPDIR=str(tmp))
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(path)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_streaming_memory_one_hour_vs_five_minutes(tmp_path):
    t0 = time.perf_counter()
    # a ~60 s block of speech-like bursts with pauses of every kind, repeated to 5 min and to 1 h
    rng = np.random.default_rng(99)
    pauses = [0.2, 0.35, 0.6, 1.0, 2.5, 0.8] * 4
    burst_s = [float(b) for b in rng.uniform(0.5, 2.5, size=len(pauses) + 1)]
    block = af.burst_signal(burst_s, pauses, lead_s=0.3, trail_s=0.4, seed=5)
    pcm = block.int16()
    long_in_block = sum(1 for s, e in block.pauses[1:-1] if (e - s) / SAMPLE_RATE >= 0.5)
    files = {}
    for name, seconds in (("5min", 300), ("1h", 3600)):
        reps = int(np.ceil(seconds * SAMPLE_RATE / pcm.size))
        path = tmp_path / f"{name}.wav"
        files[name] = (path, reps, af.write_long_wav(str(path), pcm, reps))
    generated = time.perf_counter() - t0

    results = {name: measure(path, tmp_path) for name, (path, _, _) in files.items()}
    for name, (path, reps, n) in files.items():
        r = results[name]
        assert r["decoded_s"] == n / SAMPLE_RATE
        # every long pause in every block, plus the trail+lead (0.7 s) where blocks meet
        assert r["pauses_removed"] == reps * long_in_block + (reps - 1)
        assert r["written"] == 2 * r["speech_samples"]
    assert results["1h"]["decoded_s"] >= 3600

    small, big = results["5min"]["rss_kb"] / 1024, results["1h"]["rss_kb"] / 1024
    base_small, base_big = results["5min"]["rss_before_kb"] / 1024, results["1h"]["rss_before_kb"] / 1024
    elapsed = time.perf_counter() - t0
    print(f"\npeak RSS (MiB): 5 min file {small:.1f}, 1 h file {big:.1f} "
          f"(after imports {base_small:.1f} / {base_big:.1f}, so the analysis added {small - base_small:.1f} / "
          f"{big - base_big:.1f}; ffmpeg child {results['5min']['ffmpeg_rss_kb'] / 1024:.1f} / "
          f"{results['1h']['ffmpeg_rss_kb'] / 1024:.1f}); analysis {results['5min']['seconds']:.1f} s / "
          f"{results['1h']['seconds']:.1f} s, generation {generated:.1f} s, whole test {elapsed:.1f} s; "
          f"{results['1h']['intervals']} kept intervals in the hour")
    assert big <= max(small * 1.25, small + 40)
    assert big < 300
    # what the analysis itself adds over the imports does not grow with 12x the audio
    assert big - base_big <= 1.25 * (small - base_small) + 8
    assert elapsed < 120

