"""Hostile files for trainer.predict: too little speech is said, not guessed; memory stays flat in file length."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipelines.decode import write_wav
from tests.conftest import utterance
from tests.hostile.conftest import REPO, cli

pytestmark = pytest.mark.slow


def test_a_file_with_too_little_speech_is_reported_not_named(trained, tmp_path):
    job, _ = trained
    one = tmp_path / "one-sample.wav"
    write_wav(one, np.array([12000], np.int16))
    blip = tmp_path / "blip.wav"
    write_wav(blip, utterance(150, (0.2,), seed=5))
    good = tmp_path / "voice.wav"
    write_wav(good, utterance(150, (1.5, 0.6, 1.5), seed=6))
    proc = cli("trainer.predict", "--model", job / "export", "--json", one, blip, good)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    named = [json.loads(line)["path"] for line in proc.stdout.splitlines()]
    assert named == [str(good)]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("trainer.predict:")]
    assert len(errors) == 2 and all("too_short" in ln or "silent" in ln or "no_audio" in ln for ln in errors)
    assert any("blip.wav" in ln and "too_short" in ln for ln in errors)
    # the floor is a flag: asked to, the short file is named (one padded segment)
    proc = cli("trainer.predict", "--model", job / "export", "--json", "--min-speech-seconds", "0.1", blip)
    assert proc.returncode == 0 and json.loads(proc.stdout)["segments"] == 1


# Peak memory measured in a process forked from a small Python: a child of pytest would inherit pytest's
# high-water mark (Linux carries ru_maxrss across fork and exec). The short file is predicted twice first:
# the allocators of TensorFlow and glibc grow to their working size over the first calls.
MEASURE = textwrap.dedent("""
    import json, os, resource, sys
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        from trainer import export, predict
        model, info = export.load(sys.argv[1])
        for _ in range(3):
            short = predict.predict_file(model, info, sys.argv[2])
        after_short = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        long = predict.predict_file(model, info, sys.argv[3])
        os.write(w, json.dumps({"short_kb": after_short, "long_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                "short_segments": short["segments"], "long_segments": long["segments"]}).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    print(out)
""")


def test_prediction_memory_does_not_grow_with_file_length(trained, tmp_path):
    job, _ = trained
    block = utterance(160, (4.0, 0.3, 3.0, 0.8, 2.5), seed=9)  # about 10 s of speech and pauses
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    write_wav(short, np.tile(block, 5 * 60 * 16000 // block.size + 1))  # 5 minutes
    write_wav(long, np.tile(block, 40 * 60 * 16000 // block.size + 1))  # 40 minutes
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(job / "export"), str(short), str(long)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900, check=True)
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["long_segments"] > 7 * m["short_segments"]
    growth_mb = (m["long_kb"] - m["short_kb"]) / 1024
    print(f"peak RSS after 5 min: {m['short_kb'] / 1024:.0f} MB, after 40 min: {m['long_kb'] / 1024:.0f} MB")
    assert growth_mb < 30  # holding every segment grew ~3.8 MB a minute of audio: ~130 MB here


def test_a_prediction_keeps_tensorflows_start_up_off_stderr(trained, tmp_path):
    """A real run on a CPU machine: no cuInit, oneDNN, cudart or absl lines unless --verbose (then they may show)."""
    job, _ = trained
    good = tmp_path / "voice.wav"
    write_wav(good, utterance(150, (1.5, 0.6, 1.5), seed=6))
    proc = cli("trainer.predict", "--export", job / "export", "--json", good)
    assert proc.returncode == 0 and json.loads(proc.stdout)["path"] == str(good)
    noise = ("cuInit", "oneDNN", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard", "cudart_stub",
             "rebuild TensorFlow", "WARNING:absl", "W0000", "I0000")
    assert not [w for w in noise if w in proc.stderr], proc.stderr[-3000:]
    verbose = cli("trainer.predict", "--export", job / "export", "--json", "--verbose", good)
    assert verbose.returncode == 0 and verbose.stdout == proc.stdout
