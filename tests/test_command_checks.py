"""Every command checks its arguments before importing TensorFlow (a wrong path costs no start-up), answers in
one line with exit status 2, and keeps TensorFlow's start-up noise off stderr unless --verbose."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import process_lifecycle

REPO = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
NOISE_WORDS = ("cuInit", "oneDNN", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard", "cudart_stub",
               "rebuild TensorFlow")


def run(*argv, timeout=300) -> subprocess.CompletedProcess:
    """`python -X importtime -m argv…` as a user runs it; stderr also lists every module imported."""
    return subprocess.run([sys.executable, "-X", "importtime", "-m", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, env=ENV, timeout=timeout)


def imported(proc) -> set:
    return {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}


def messages(proc) -> str:
    """stderr without -X importtime's lines (module names such as cpu_feature_guard are not messages)."""
    return "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:"))


def error_line(proc) -> str:
    """The one error line of a refused command (argparse's usage lines aside), after checking there is one."""
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, "\n".join(lines)[-3000:]
    return errors[0]


@pytest.fixture()
def folders(tmp_path):
    """A training job folder (JOB/export/speaker_model.json), an audio file, and a folder that looks like a
    dataset (dataset.json), none of which needs TensorFlow to be recognised."""
    export = tmp_path / "job" / "export"
    export.mkdir(parents=True)
    (export / "speaker_model.json").write_text("{}")
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "dataset.json").write_text("{}")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "path": "a.wav", "speaker": "s:1"}) + "\n")
    return {"job": tmp_path / "job", "export": export, "audio": audio, "dataset": dataset, "manifest": manifest,
            "missing": tmp_path / "missing", "tmp": tmp_path}


CASES = [  # (argv with {placeholders}, what the error line says)
    (["trainer.predict", "--export", "{missing}", "{audio}"], "--export {missing}: no such folder"),
    (["trainer.predict", "--export", "{job}", "{audio}"], "did you mean {job}/export?"),
    (["trainer.embed", "--model", "{job}", "{audio}"], "did you mean {job}/export?"),
    (["trainer.enroll", "--export", "{export}", "--gallery", "{tmp}/g.json", "--speaker", "s", "{missing}.wav"],
     "audio file {missing}.wav: no such file"),
    (["trainer.verify", "--export", "{job}", "{audio}", "{audio}"], "did you mean {job}/export?"),
    (["trainer.verify", "--export", "{export}", "--gallery", "{missing}.json", "--speaker", "s", "{audio}"],
     "--gallery {missing}.json: no such file"),
    (["trainer.verify", "--export", "{export}", "{audio}", "{missing}.wav"], "audio file {missing}.wav: no such file"),
    (["trainer.embed", "--export", "{export}", "{missing}.wav", "{missing}2.wav"],
     "audio file {missing}.wav: no such file (nor do the other 1)"),
    (["trainer.predict", "--export", "{export}", "--min-speech-seconds", "-1", "{audio}"],
     "--min-speech-seconds must be >= 0"),
    (["trainer.task", "--dataset", "{missing}", "--job-dir", "{tmp}/j"], "--dataset {missing}: no such folder"),
    (["trainer.task", "--data-dir", "{tmp}", "--job-dir", "{tmp}/j"], "has no dataset.json"),
    (["trainer.task", "--dataset", "{dataset}", "--job-dir", "{tmp}/j", "--epochs", "0"], "--epochs must be >= 1"),
    (["trainer.task", "--dataset", "{dataset}", "--job-dir", "{tmp}/j", "--noise-dir", "{missing}"],
     "--noise-dir {missing}: no such folder"),
    (["pipelines.preprocess", "--dataset", "{missing}"], "--dataset {missing}: no such folder"),
    (["pipelines.build_dataset", "--manifest", "{missing}", "--output", "{tmp}/o"], "--manifest {missing}: no such file"),
    (["pipelines.build_dataset", "--audio-dir", "{missing}", "--output", "{tmp}/o"], "--audio-dir {missing}: no such"),
    (["pipelines.build_dataset", "--manifest", "{manifest}", "--output", "{tmp}/o", "--segment-seconds", "-1"],
     "--segment-seconds"),
    (["speaker_datasets", "predict", "--export", "{job}", "{audio}"], "did you mean {job}/export?"),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv, says", CASES, ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_a_wrong_argument_is_one_line_before_tensorflow(argv, says, folders):
    proc = run(*[a.format(**folders) for a in argv])
    assert proc.returncode == 2
    assert says.format(**folders) in error_line(proc)
    assert "tensorflow" not in imported(proc)


@pytest.mark.slow
def test_tensorflow_start_up_is_quiet_unless_verbose(folders):
    """predict on a folder that passes the cheap checks but is no SavedModel: TensorFlow is imported, then the
    export is refused. Quiet: no start-up line on stderr, only the error; --verbose: TensorFlow's own lines."""
    quiet = run("trainer.predict", "--export", folders["export"], folders["audio"])
    assert quiet.returncode == 2 and "tensorflow" in imported(quiet)
    assert "is not an export of trainer.task" in error_line(quiet)
    found = [w for w in NOISE_WORDS if w in messages(quiet)]
    assert not found, messages(quiet)[-3000:]
    verbose = run("trainer.predict", "--export", folders["export"], "--verbose", folders["audio"])
    assert verbose.returncode == 2 and "is not an export of trainer.task" in error_line(verbose)
    if not any(w in messages(verbose) for w in NOISE_WORDS):
        pytest.skip("this machine's TensorFlow says nothing at start-up: nothing to hide")


@pytest.mark.slow
def test_quiet_tensorflow_hides_the_start_up_and_the_first_op_but_passes_other_output():
    code = ("import os, sys\nfrom pipelines import process_lifecycle as p\np.quiet_tensorflow()\n"
            "with p.filtered_stderr():\n"
            "    os.write(2, b'I0000 00:00:1.5    7 cudart_stub.cc:31] Could not find cuda drivers\\n')\n"
            "    os.write(2, b'a line of our own\\n')\n"
            "tf = p.import_tensorflow(lean=False)\nprint(float(tf.reduce_sum(tf.ones([3]))))\n"
            "import logging; print(logging.getLogger('tensorflow').level)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["3.0", "40"]
    assert proc.stderr.strip() == "a line of our own"


def test_noise_pattern_matches_tensorflows_lines_only():
    noise = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1796310006.545976    6857 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
             "E0000 00:00:1796310018.214157    6857 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
             "I0000 00:00:1796309936.054460    5604 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
             "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
             "appropriate compiler flags."]
    kept = ["python -m trainer.predict: error: --export x: no such folder", "Traceback (most recent call last):",
            "E0000 00:00:1.0  1 saved_model.cc:1] could not read the SavedModel"]
    assert all(process_lifecycle.NOISE.search(line) for line in noise)
    assert not any(process_lifecycle.NOISE.search(line) for line in kept)
    assert re.compile(process_lifecycle.NOISE.pattern)  # one pattern, compiled once
