"""Helpers of the hostile-input suite: the builder's command line run as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from pipelines.decode import write_wav
from tests.conftest import utterance

REPO = Path(__file__).resolve().parents[2]


def cli(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m module args…` from the repository, as a user runs it (a hang fails on the timeout)."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def build(*args) -> subprocess.CompletedProcess:
    return cli("pipelines.build_dataset", *args)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single error line a failed command printed (and nothing like a traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def voice(path: Path, f0: float = 150, seed: int = 0, pattern=(1.4, 0.7, 1.2)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, utterance(f0, pattern, seed=seed))
    return path


def write_manifest(path: Path, lines: List) -> Path:
    """Lines as given: dicts become JSON, bytes and str are written verbatim (each followed by a newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out += (line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n"
    path.write_bytes(out)
    return path


def errors(out: Path) -> Dict[str, str]:
    """{id or path: reason} of every rejection in OUT/errors/."""
    found = {}
    for f in sorted((out / "errors").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            found[r["id"] or r["path"]] = r["reason"]
    return found
