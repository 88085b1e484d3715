"""What the acoustic audit adds to the builder's CPU per audio second (issue: at most 30 %).

  python -m benchmarks.audit_cost --export JOB/export --speech DIR [--runs 3] [--output results.json]

Two inputs from the same real speech (DIR laid out <speaker>/<files>, e.g. librispeech_202): the files as they
are (short clips), and the same audio concatenated into 6 long 64 kb/s MP3 files (chapters). Each is built
three ways, in the same run: `--audit-policy off`, the quality gates alone (the default, no model), and the
full audit (`--audit-model`, policy flag so every recording goes on to the shards). The figure is the CPU time
(user + system of the builder process and its workers) per second of audio, median of `--runs`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import write_results
from benchmarks.audit import speakers_of
from pipelines import arguments
from pipelines.decode import DecodeInfo, iter_decoded, write_wav
from pipelines.decode_ffmpeg import find_ffmpeg

MODES = {"off": ["--audit-policy", "off"], "quality": [], "full": ["--audit-policy", "flag"]}


def long_files(speech_dir: str, folder: str, files: int = 6) -> tuple:
    """The speech of DIR concatenated into `files` MP3s (speakers dealt round-robin); (manifest, seconds)."""
    speakers = sorted(speakers_of(speech_dir).items())
    lines, total = [], 0.0
    for k in range(files):
        pcm = np.concatenate([c for _, path in speakers[k::files] for c in iter_decoded(path, DecodeInfo())])
        wav, mp3 = os.path.join(folder, f"long{k}.wav"), os.path.join(folder, f"long{k}.mp3")
        write_wav(wav, pcm)
        subprocess.run([find_ffmpeg(), "-loglevel", "error", "-y", "-i", wav, "-b:a", "64k", "-ac", "1", mp3],
                       check=True)
        os.remove(wav)
        total += pcm.size / 16000
        lines.append({"id": f"long-{k}", "path": os.path.basename(mp3), "speaker": f"mix:{k}"})
    manifest = os.path.join(folder, "manifest.jsonl")
    with open(manifest, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    return manifest, total


def build_cpu(src: List[str], out: str, flags: List[str]) -> float:
    """CPU seconds (user + system, the builder and every process it started) of one build."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "pipelines.build_dataset", *src, "--output", out, "--overwrite",
                    "--no-progress", *flags], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.audit_cost", __doc__)
    p.add_argument("--export", required=True, help="the audit model")
    p.add_argument("--speech", required=True, help="folder <speaker>/<files> of speech")
    p.add_argument("--runs", type=int, default=3, help="builds of each kind; the figure is their median")
    arguments.flag(p, "--output", "--out", dest="out", default=None, help="write the figures as JSON here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    MODES["full"] = ["--audit-policy", "flag", "--audit-model", args.export]
    with tempfile.TemporaryDirectory(prefix="audit-cost-") as tmp:
        manifest, long_s = long_files(args.speech, tmp)
        short_s = sum(sum(c.size for c in iter_decoded(path, DecodeInfo())) / 16000
                      for path in speakers_of(args.speech).values())
        inputs = {"long": (["--manifest", manifest], long_s), "short": (["--audio-dir", args.speech], short_s)}
        cpu: Dict[str, Dict[str, List[float]]] = {w: {m: [] for m in MODES} for w in inputs}
        for run in range(args.runs):
            for workload, (src, _) in inputs.items():
                for mode, flags in MODES.items():
                    cpu[workload][mode].append(build_cpu(src, os.path.join(tmp, "out"), flags))
                    print(f"run {run + 1} {workload} {mode}: {cpu[workload][mode][-1]:.2f} CPU s", flush=True)
    result = {"export": args.export, "runs": args.runs, "workloads": {}}
    for workload, (_, seconds) in inputs.items():
        med = {m: statistics.median(v) for m, v in cpu[workload].items()}
        result["workloads"][workload] = {
            "audio_seconds": round(seconds, 1), "cpu_seconds": cpu[workload],
            "cpu_ms_per_audio_second": {m: round(1000 * v / seconds, 3) for m, v in med.items()},
            "added": {m: round(med[m] / med["off"] - 1, 4) for m in ("quality", "full")}}
        print(f"{workload} ({seconds / 60:.1f} min of audio): " + ", ".join(
            f"{m} {1000 * v / seconds:.2f} ms/s" for m, v in med.items())
            + f"; quality +{100 * (med['quality'] / med['off'] - 1):.1f} %, full "
              f"+{100 * (med['full'] / med['off'] - 1):.1f} %")
    if args.out:
        write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
