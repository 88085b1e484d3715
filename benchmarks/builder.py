"""Dataset-builder benchmark: throughput against ffmpeg alone and the seed's workflow, scaling, storage.

  python -m benchmarks.builder                       # 30 minutes of speech-like audio, 3 runs, median
  python -m benchmarks.builder --minutes 2 --runs 1  # quick look
  python -m benchmarks.builder --memory              # also peak RSS on one 10-hour file and 1,000 short files
  python -m benchmarks.builder --scaling-minutes 360 # also 1 vs 2 workers, phase by phase, on 6 hours of MP3

Audio is generated (the demo corpus's espeak-ng voices, or its numpy synthesiser) and encoded as
LibriVox does (64 kb/s mono MP3) and as YouTube does (48 kHz stereo Opus). Every figure is a ratio
of audio seconds to CPU seconds (user + system of the command and its children, so ffmpeg counts),
measured in the same run; medians of --runs. Scaling is shown phase by phase (benchmarks.phases):
wall, CPU and cores used by each phase with 1 worker and with 2 in each DirectRunner mode.
Writes benchmarks/results/builder.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import phases
from demos import corpus as demo_corpus
from pipelines import arguments
from pipelines.decode_ffmpeg import find_ffmpeg

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = {  # name -> (extension, ffmpeg encoder arguments)
    "mp3_64k_mono": ("mp3", ["-ac", "1", "-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k"]),
    "opus_48k_stereo": ("webm", ["-ac", "2", "-ar", "48000", "-c:a", "libopus", "-b:a", "96k"]),
}


_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': rc, 'cpu_s': u.ru_utime + u.ru_stime, 'max_rss_mb': u.ru_maxrss / 1024}), file=sys.stderr)\n"
)


def run_measured(cmd: Sequence[str], env=None, cwd=None) -> Dict[str, float]:
    """Wall and CPU seconds (user + sys, children included, so ffmpeg counts) and peak RSS of one command.

    A small wrapper process runs the command and reads its own RUSAGE_CHILDREN, so the peak RSS is
    this command's (the largest process of its tree), not the maximum over the whole benchmark."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    usage = json.loads(lines[-1]) if lines else {"rc": proc.returncode}
    if proc.returncode != 0 or usage.get("rc") != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {' '.join(lines[-5:])[-500:]}")
    return {"wall_s": wall, "cpu_s": usage["cpu_s"], "max_rss_mb": usage["max_rss_mb"]}


UNIQUE_SECONDS = 300.0  # speech rendered per speaker; longer recordings repeat it (decoding cost is the same)


def make_audio(work: str, minutes: float, formats: Sequence[str] = tuple(FORMATS), speakers: int = 6) -> Dict[str, List[Dict]]:
    """Speech-like recordings (one per speaker) totalling `minutes`, in each benchmark format."""
    ffmpeg = find_ffmpeg()
    generator = demo_corpus.pick_generator("auto")
    seconds = minutes * 60 / speakers
    out: Dict[str, List[Dict]] = {name: [] for name in formats}
    for s in range(1, speakers + 1):
        samples, _ = demo_corpus.render(s, 1, min(seconds, UNIQUE_SECONDS), generator)
        samples = np.resize(samples, int(round(seconds * demo_corpus.SOURCE_RATE)))  # repeats when longer
        for name in formats:
            ext, codec = FORMATS[name]
            path = os.path.join(work, name, f"s{s:02d}.{ext}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(demo_corpus.SOURCE_RATE),
                            "-ac", "1", "-i", "pipe:0", *codec, "file:" + path],
                           input=samples.astype("<i2").tobytes(), check=True)
            out[name].append({"id": f"bench-{name}-s{s:02d}", "path": path, "speaker": f"bench:s{s:02d}",
                              "duration_s": seconds})
    for name, records in out.items():
        with open(os.path.join(work, name, "manifest.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    return out


def builder_args(manifest: str, output: str, *flags: str) -> List[str]:
    return ["--manifest", manifest, "--output", output, "--overwrite", *flags]


def builder_cmd(manifest: str, output: str, *flags: str) -> List[str]:
    return [sys.executable, "-m", "pipelines.build_dataset", *builder_args(manifest, output, *flags)]


def ffmpeg_only(files: Sequence[str]) -> List[str]:
    """The limit: one ffmpeg decoding and resampling every file to 16 kHz mono s16, nothing else."""
    cmd = [find_ffmpeg(), "-nostdin", "-v", "error", "-threads", "1"]
    for f in files:
        cmd += ["-i", "file:" + f]
    for i in range(len(files)):
        cmd += ["-map", f"{i}:a:0", "-ac", "1", "-ar", "16000", "-f", "s16le", "-y", "/dev/null"]
    return cmd


def seed_workflow(files: Sequence[str], work: str) -> Dict[str, float]:
    """The seed project's way: ffmpeg -f segment into 5 s WAVs, then `sox … spectrogram` per piece to PNG."""
    sox = shutil.which("sox")
    if not sox:
        raise RuntimeError("sox not found (apt-get install sox): needed for the seed-workflow comparison")
    total = {"wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0}  # times add up; RSS is the largest step
    pieces = os.path.join(work, "seed")
    shutil.rmtree(pieces, ignore_errors=True)
    os.makedirs(pieces)
    for i, f in enumerate(files):
        r = run_measured([find_ffmpeg(), "-nostdin", "-v", "error", "-i", "file:" + f, "-f", "segment",
                          "-segment_time", "5", "-c:a", "pcm_s16le", os.path.join(pieces, f"{i:02d}-%05d.wav")])
        for k in ("wall_s", "cpu_s"):
            total[k] += r[k]
        total["max_rss_mb"] = max(total["max_rss_mb"], r["max_rss_mb"])
    for wav in sorted(os.listdir(pieces)):
        p = os.path.join(pieces, wav)
        r = run_measured([sox, p, "-n", "spectrogram", "-o", p[:-4] + ".png"])
        for k in ("wall_s", "cpu_s"):
            total[k] += r[k]
        total["max_rss_mb"] = max(total["max_rss_mb"], r["max_rss_mb"])
    return total


def _cpu_now() -> float:
    """CPU seconds of this process (all threads) and of its finished children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def stage_profile(files: Sequence[str], work: str, segment_seconds: float = 1.0) -> Dict[str, float]:
    """CPU seconds of each stage of the builder's per-item work, run one stage at a time in this process
    with the builder's own functions (no Beam): where the time goes, apart from the framework.

    decode_resample: ffmpeg to 16 kHz mono s16, read through the pipe into a file; silence: frame levels,
    histogram, pauses and the speech-only PCM written out, from that file; segment: cutting the speech PCM;
    features: the TensorFlow feature function per batch of 64 (after a warm-up call, whose cost is the
    start-up's); serialize_write: tf.train.Example bytes, TFRecord framing and writing."""
    from pipelines import decode, examples, schema, segments, shards, silence
    from pipelines.features import BatchFeaturizer

    seg = segments.seconds_to_samples(segment_seconds)
    features = schema.DEFAULT_FEATURES
    featurizer = BatchFeaturizer(schema.FeatureConfig(segment_samples=seg), features)
    featurizer(np.zeros((2, seg), np.int16))  # trace once, outside the timings
    out: Dict[str, float] = {}
    decoded, speech_files = [], []
    start = _cpu_now()
    for i, path in enumerate(files):
        decoded.append(os.path.join(work, f"decoded-{i:03d}.s16"))
        with open(decoded[-1], "wb") as f:
            for chunk in decode.iter_decoded(path, decode.DecodeInfo()):
                f.write(chunk.tobytes())
    out["decode_resample"] = _cpu_now() - start
    start = _cpu_now()
    for i, path in enumerate(decoded):
        speech_files.append(os.path.join(work, f"speech-{i:03d}.s16"))
        with open(path, "rb") as raw, open(speech_files[-1], "wb") as f:
            hist = silence.LevelHistogram()
            for levels in silence.iter_frame_levels(decode.iter_file_chunks(raw)):
                hist.add(levels)
            silence.strip_pauses(raw, os.path.getsize(path) // schema.SAMPLE_WIDTH, hist, silence.SilenceParams(),
                                 f.write)
    out["silence"] = _cpu_now() - start
    start = _cpu_now()
    items = []
    for i, path in enumerate(speech_files):
        with open(path, "rb") as f:
            chunks = (decode.read_pcm(c) for c in iter(lambda: f.read(decode.CHUNK_SAMPLES * schema.SAMPLE_WIDTH), b""))
            for first, pcm, valid in segments.iter_segments(chunks, seg, seg):
                item = {k: f"bench-{k}" for k in examples.SEGMENT_META}
                item.update({schema.ID: f"bench-{i:03d}-{first:09d}", schema.START_S: first / schema.SAMPLE_RATE,
                             schema.SOURCE_START_S: first / schema.SAMPLE_RATE, schema.NUM_VALID_SAMPLES: valid,
                             "pcm": pcm})
                items.append(item)
    out["segment"] = _cpu_now() - start
    batches = [items[i:i + 64] for i in range(0, len(items), 64)]
    start = _cpu_now()
    computed = [featurizer(np.stack([item["pcm"] for item in batch])) for batch in batches]
    out["features"] = _cpu_now() - start
    start = _cpu_now()
    with open(os.path.join(work, "stages.tfrecord"), "wb") as f:
        for batch, values in zip(batches, computed):
            for i, item in enumerate(batch):
                f.write(shards.tfrecord_frame(examples.serialize_example(
                    item, examples.feature_bytes(item, values, i, features))))
    out["serialize_write"] = _cpu_now() - start
    out["segments"] = len(items)
    for path in decoded + speech_files + [os.path.join(work, "stages.tfrecord")]:
        os.remove(path)
    return out


SCALING_CONFIGS = {  # name -> extra builder flags
    "1_worker": (),
    "2_workers_multi_processing": ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing"),
    "2_workers_multi_threading": ("--direct_num_workers", "2", "--direct_running_mode", "multi_threading"),
    "1_local_worker": ("--local-workers", "1"),  # pipelines.local_workers: forked from a preloaded process
    "2_local_workers": ("--local-workers", "2"),
}


def scaling(manifest: str, work: str, env, runs: int, names: Optional[Sequence[str]] = None) -> Dict:
    """1 worker against 2 (each DirectRunner running mode), phase by phase (`benchmarks.phases`): wall,
    CPU and cores used per phase, the speed-up of each, and the most 2 cores could give each phase
    without extra CPU: cores / the cores one worker already keeps busy there (ffmpeg decodes in its own
    process and TensorFlow runs its own threads, so one worker uses more than one core)."""
    out = os.path.join(work, "dataset_phases")
    configs = {name: phases.median_phases([phases.measure(builder_args(manifest, out, *flags), env)
                                           for _ in range(runs)])
               for name, flags in SCALING_CONFIGS.items() if name == "1_worker" or names is None or name in names}
    one = {r["phase"]: r for r in configs["1_worker"]["phases"]}
    cores = min(2, os.cpu_count() or 1)
    result = {"configs": configs, "speedup": {}, "ideal_speedup_on_2_cores": {}}
    for name, config in configs.items():
        if name == "1_worker":
            continue
        result["speedup"][name] = {"whole_build": round(configs["1_worker"]["wall_s"] / config["wall_s"], 3)}
        for r in config["phases"]:
            base = one.get(r["phase"])
            if base and base["wall_s"] >= 0.05 and r["wall_s"] >= 0.05:
                result["speedup"][name][r["phase"]] = round(base["wall_s"] / r["wall_s"], 3)
    for phase, r in one.items():
        if r["wall_s"] >= 0.05 and r["cores"] > 0:
            # a phase below one core is waiting (disk, a pipe): more workers still get at most `cores` times
            result["ideal_speedup_on_2_cores"][phase] = round(min(float(cores), max(1.0, cores / r["cores"])), 3)
    return result


def loop_copies(records: Sequence[Dict], times: int, folder: str) -> str:
    """A manifest of the same recordings, each `times` as long (ffmpeg stream copy: seconds, no encode)."""
    os.makedirs(folder, exist_ok=True)
    lines = []
    for r in records:
        path = os.path.join(folder, os.path.basename(r["path"]))
        subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-stream_loop", str(times - 1),
                        "-i", "file:" + r["path"], "-c", "copy", "file:" + path], check=True)
        lines.append(json.dumps(dict(r, id=f"{r['id']}-x{times}", path=path, duration_s=r["duration_s"] * times)) + "\n")
    manifest = os.path.join(folder, "manifest.jsonl")
    with open(manifest, "w") as f:
        f.writelines(lines)
    return manifest


def tree_env(env, tree: Optional[str]):
    """The environment that runs the builder of source tree `tree` (None: this one). `python -m` puts the
    working directory first on sys.path, so the command also runs from `tree` (`run_measured(cwd=tree)`)."""
    return env if tree is None else dict(env, PYTHONPATH=os.path.abspath(tree))


def tree_digest(folder: str) -> str:
    """SHA-256 over a dataset's shard files (names and bytes): equal digests, byte-identical shards."""
    digest = hashlib.sha256()
    for name in sorted(f for f in os.listdir(folder) if ".tfrecord" in f):
        digest.update(name.encode())
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def short_clip_comparison(source_dir: str, work: str, env, runs: int, trees: Dict[str, Optional[str]],
                          count: int = 1000) -> Dict:
    """The builder's CPU per audio second on `count` 3-second clips against one file of the same total length
    (benchmarks.short_clips), for each source tree in `trees` (label -> path, None for this one), runs
    interleaved so contention falls on all alike; medians of `runs`. Also the phase-by-phase profile of this
    tree on both inputs (one run each) and whether every tree wrote the same shards."""
    from benchmarks import short_clips

    workload = short_clips.make_workload(source_dir, os.path.join(work, "clips"), count=count)
    measured: Dict[str, Dict[str, List[Dict[str, float]]]] = {t: {"short": [], "long": []} for t in trees}
    digests: Dict[str, Dict[str, set]] = {t: {"short": set(), "long": set()} for t in trees}
    for _ in range(runs):
        for label, tree in trees.items():
            for kind in ("short", "long"):
                # one output folder per tree: an older builder refuses a folder holding files it does not write
                out = os.path.join(work, "clips", f"out-{label}-{kind}")
                measured[label][kind].append(run_measured(builder_cmd(workload[kind]["manifest"], out),
                                                          tree_env(env, tree), cwd=tree))
                digests[label][kind].add(tree_digest(out))
    audio_s = workload["short"]["audio_seconds"]
    result: Dict = {"files": count, "audio_seconds": audio_s, "trees": {},
                    # each tree against itself (determinism), then the trees against each other (same output)
                    "identical_shards_across_runs": {t: {k: len(v) == 1 for k, v in d.items()} for t, d in digests.items()},
                    "identical_shards_across_trees": {k: len(set().union(*(d[k] for d in digests.values()))) == 1
                                                      for k in ("short", "long")}}
    for label in trees:
        row = {kind: {k: statistics.median(r[k] for r in measured[label][kind]) for k in measured[label][kind][0]}
               for kind in ("short", "long")}
        for kind in ("short", "long"):
            row[kind]["cpu_ms_per_audio_s"] = round(1000 * row[kind]["cpu_s"] / audio_s, 3)
        row["short_over_long_cpu"] = round(row["short"]["cpu_s"] / row["long"]["cpu_s"], 3)
        row["extra_cpu_ms_per_file"] = round(1000 * (row["short"]["cpu_s"] - row["long"]["cpu_s"]) / count, 2)
        result["trees"][label] = row
    result["phases_this_tree"] = {
        kind: phases.measure(builder_args(workload[kind]["manifest"], os.path.join(work, "clips", "out-phases")), env)
        for kind in ("short", "long")}
    return result


def startup(work: str, env, tree: Optional[str] = None) -> Dict[str, float]:
    """The builder's fixed cost: a whole run on one 3-second recording (imports, pipeline, report)."""
    folder = os.path.join(work, "startup")
    os.makedirs(folder, exist_ok=True)
    t = np.arange(3 * 16000) / 16000.0
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 * 32767).astype(np.int16)
    from pipelines.decode import write_wav

    write_wav(os.path.join(folder, "tone.wav"), tone)
    with open(os.path.join(folder, "manifest.jsonl"), "w") as f:
        f.write(json.dumps({"id": "tone", "path": "tone.wav", "speaker": "bench:tone"}) + "\n")
    return run_measured(builder_cmd(os.path.join(folder, "manifest.jsonl"), os.path.join(folder, "out")),
                        tree_env(env, tree), cwd=tree)


def median_runs(fn, runs: int) -> Dict[str, float]:
    results = [fn() for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def interleaved(fns: Dict[str, object], runs: int) -> Dict[str, Dict[str, float]]:
    """Medians of `runs` runs of each function, taken in turn (a, b, a, b, ...) so that the machine's
    contention of the moment falls on all of them alike."""
    results: Dict[str, List[Dict[str, float]]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            results[k].append(fn())
    return {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in results.items()}


def storage(manifest: str, work: str, audio_s: float) -> Dict[str, Dict[str, float]]:
    out = {}
    for features in ("audio", "audio,fft", "audio,log_mel", "audio,fft,log_mel", "audio,spectrogram"):
        for gzip in (False, True):
            folder = os.path.join(work, "storage")
            run_measured(builder_cmd(manifest, folder, "--features", features, *(["--gzip"] if gzip else [])))
            size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if ".tfrecord" in f)
            out[f"{features}{' gzip' if gzip else ''}"] = {"bytes_per_audio_second": round(size / audio_s, 1)}
    return out


def memory(work: str, env=None) -> Dict[str, Dict[str, float]]:
    """Peak RSS of the builder on one 10-hour file, a 10-minute file and 1,000 short files."""
    ffmpeg = find_ffmpeg()
    base = os.path.join(work, "mem")
    os.makedirs(base, exist_ok=True)
    samples, _ = demo_corpus.render(1, 7, 60.0, demo_corpus.pick_generator("auto"))
    one_min = os.path.join(base, "one_min.wav")
    from pipelines.decode import write_wav

    write_wav(one_min, samples, demo_corpus.SOURCE_RATE)
    results = {}
    ten_min = os.path.join(base, "10_minutes.mp3")
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-stream_loop", "9", "-i", one_min,
                    "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", ten_min], check=True)
    # 10 hours = the 10-minute MP3's frames 60 times over (stream copy: seconds, not a 10-hour encode)
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-stream_loop", "59", "-i", ten_min, "-c", "copy",
                    os.path.join(base, "10_hours.mp3")], check=True)
    for name in ("10_minutes", "10_hours"):
        manifest = os.path.join(base, f"{name}.jsonl")
        with open(manifest, "w") as f:
            f.write(json.dumps({"id": name, "path": f"{name}.mp3", "speaker": "bench:1"}) + "\n")
        results[name] = run_measured(builder_cmd(manifest, os.path.join(base, "out")), env)
    short_dir = os.path.join(base, "short")
    os.makedirs(short_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(1000):
        start = int(rng.integers(0, samples.size - 3 * demo_corpus.SOURCE_RATE))
        p = os.path.join(short_dir, f"{i:04d}.wav")
        write_wav(p, samples[start:start + 3 * demo_corpus.SOURCE_RATE], demo_corpus.SOURCE_RATE)
        lines.append(json.dumps({"id": f"short-{i:04d}", "path": p, "speaker": f"bench:{i % 10}"}) + "\n")
    manifest = os.path.join(base, "short.jsonl")
    with open(manifest, "w") as f:
        f.writelines(lines)
    results["1000_short_files"] = run_measured(builder_cmd(manifest, os.path.join(base, "out")), env)
    results["ratios"] = {"10_hours_over_10_minutes_peak_rss": round(
        results["10_hours"]["max_rss_mb"] / results["10_minutes"]["max_rss_mb"], 3)}
    return results


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.builder", __doc__)
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of audio per format (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement, median reported (default: %(default)s)")
    p.add_argument("--memory", action="store_true", help="also the 10-hour and 1,000-file memory runs (slow)")
    p.add_argument("--memory-only", action="store_true", help="only the memory runs (no throughput, no storage)")
    p.add_argument("--no-scaling", action="store_true",
                   help="skip the phase-by-phase runs of 1 worker and 2 workers in each running mode")
    p.add_argument("--scaling-minutes", type=float, default=0.0,
                   help="also the phase-by-phase scaling on this many minutes of the first format, made by "
                        "looping its recordings (stream copy), e.g. 360 (default: none)")
    p.add_argument("--scaling-configs", default=None,
                   help="comma-separated worker configurations for the phase runs (default: all of "
                        + ", ".join(SCALING_CONFIGS) + "; 1_worker always runs)")
    p.add_argument("--no-seed", action="store_true", help="skip the seed-workflow comparison (needs sox)")
    p.add_argument("--no-storage", action="store_true", help="skip the bytes-per-second runs (10 builds)")
    p.add_argument("--formats", default=",".join(FORMATS), help="(default: %(default)s)")
    p.add_argument("--baseline-tree", default=None,
                   help="also run the builder of this source tree (e.g. a `git worktree` of an earlier commit) in "
                        "the same run, interleaved: before/after figures for the formats and the short clips")
    p.add_argument("--short-clips", default=None, metavar="DIR",
                   help="also the short-clip workload: clips cut from the FLACs under DIR (e.g. LibriSpeech) against "
                        "one file of the same total length (benchmarks/short_clips.py)")
    p.add_argument("--short-clips-count", type=int, default=1000, help="(default: %(default)s)")
    p.add_argument("--short-clips-only", action="store_true", help="only the short-clip workload")
    arguments.flag(p, "--output", "--out", dest="out", default=os.path.join(HERE, "results", "builder.json"),
                   help="the results (JSON)")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="bench-builder-")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            p.error(f"--formats: unknown {unknown}; choose from {', '.join(FORMATS)}")
        scaling_names = [n.strip() for n in args.scaling_configs.split(",")] if args.scaling_configs else None
        if scaling_names and not set(scaling_names) <= set(SCALING_CONFIGS):
            p.error(f"--scaling-configs: choose from {', '.join(SCALING_CONFIGS)}")
        audio = {} if (args.memory_only or args.short_clips_only) else make_audio(work, args.minutes, formats)
        base = os.path.abspath(args.baseline_tree) if args.baseline_tree else None
        report = {"machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()},
                  "date": time.strftime("%Y-%m-%d"), "minutes_per_format": args.minutes, "runs": args.runs,
                  "formats": {}}
        if audio and base:
            pair = interleaved({"after": lambda: startup(work, env), "before": lambda: startup(work, env, base)},
                               args.runs)
            report["startup"], report["startup_before"] = pair["after"], pair["before"]
            report["baseline_tree"] = base
        elif audio:
            report["startup"] = median_runs(lambda: startup(work, env), args.runs)
        for name, records in audio.items():
            files = [r["path"] for r in records]
            audio_s = sum(r["duration_s"] for r in records)
            manifest = os.path.join(work, name, "manifest.jsonl")
            out = os.path.join(work, name, "dataset")
            row = {"audio_seconds": audio_s}
            if base:
                pair = interleaved({
                    "after": lambda: run_measured(builder_cmd(manifest, out), env),
                    "before": lambda: run_measured(builder_cmd(manifest, out), tree_env(env, base), cwd=base)},
                    args.runs)
                row["builder_1_worker"], row["builder_1_worker_before"] = pair["after"], pair["before"]
            else:
                row["builder_1_worker"] = median_runs(lambda: run_measured(builder_cmd(manifest, out), env), args.runs)
            row["builder_2_workers"] = median_runs(lambda: run_measured(builder_cmd(
                manifest, out, "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"), env), args.runs)
            if not args.no_scaling:
                row["scaling"] = scaling(manifest, os.path.join(work, name), env, args.runs, scaling_names)
            row["ffmpeg_only"] = median_runs(lambda: run_measured(ffmpeg_only(files)), args.runs)
            if not args.no_seed:
                row["seed_workflow"] = median_runs(lambda: seed_workflow(files, os.path.join(work, name)), args.runs)
            for key in [k for k in row if isinstance(row[k], dict) and "cpu_s" in row[k]]:
                row[key]["x_realtime_per_core"] = round(audio_s / max(row[key]["cpu_s"], 1e-9), 1)
            # the same run without the fixed start-up (imports, pipeline construction, report): the rate
            # the builder converges to as the input grows, which is what a large job pays per audio second
            steady_cpu = row["builder_1_worker"]["cpu_s"] - report["startup"]["cpu_s"]
            row["builder_steady_state"] = {"cpu_s": round(steady_cpu, 3),
                                           "x_realtime_per_core": round(audio_s / max(steady_cpu, 1e-9), 1)}
            if base:
                before_cpu = row["builder_1_worker_before"]["cpu_s"] - report["startup_before"]["cpu_s"]
                row["builder_steady_state_before"] = {
                    "cpu_s": round(before_cpu, 3), "x_realtime_per_core": round(audio_s / max(before_cpu, 1e-9), 1)}
            stages = stage_profile(files, os.path.join(work, name))
            row["stages_cpu_s"] = {k: round(v, 3) for k, v in stages.items()}
            row["stages_cpu_s"]["framework_and_rest"] = round(
                steady_cpu - sum(v for k, v in stages.items() if k != "segments"), 3)
            b = row["builder_1_worker"]["x_realtime_per_core"]
            steady = row["builder_steady_state"]["x_realtime_per_core"]
            limit = row["ffmpeg_only"]["x_realtime_per_core"]
            row["ratios"] = {
                "builder_vs_ffmpeg_limit": round(b / limit, 3),
                "builder_steady_vs_ffmpeg_limit": round(steady / limit, 3),
                "speedup_2_workers_wall": round(row["builder_1_worker"]["wall_s"] / row["builder_2_workers"]["wall_s"], 2),
            }
            if base:
                row["ratios"]["steady_after_over_before"] = round(
                    steady / row["builder_steady_state_before"]["x_realtime_per_core"], 3)
                row["ratios"]["end_to_end_after_over_before"] = round(
                    b / row["builder_1_worker_before"]["x_realtime_per_core"], 3)
            if "2_workers_multi_threading" in row.get("scaling", {}).get("speedup", {}):
                row["ratios"]["speedup_2_workers_multi_threading_wall"] = \
                    row["scaling"]["speedup"]["2_workers_multi_threading"]["whole_build"]
            if "seed_workflow" in row:
                seed = row["seed_workflow"]["x_realtime_per_core"]
                row["ratios"]["builder_vs_seed"] = round(b / seed, 2)
                row["ratios"]["builder_steady_vs_seed"] = round(steady / seed, 2)
            report["formats"][name] = row
        if args.scaling_minutes > 0 and audio:
            first = formats[0]
            times = max(2, int(round(args.scaling_minutes / args.minutes)))
            folder = os.path.join(work, "long")
            manifest = loop_copies(audio[first], times, folder)
            report["scaling_long"] = {"format": first, "minutes": args.minutes * times,
                                      **scaling(manifest, folder, env, args.runs, scaling_names)}
        if not args.no_storage and audio:
            first = formats[0]
            report["storage"] = storage(os.path.join(work, first, "manifest.jsonl"), work,
                                        sum(r["duration_s"] for r in audio[first]))
        if args.memory or args.memory_only:
            report["memory"] = memory(work, env)
        if args.short_clips:
            trees = {"after": None, **({"before": base} if base else {})}
            report["short_clips"] = short_clip_comparison(args.short_clips, work, env, args.runs, trees,
                                                          args.short_clips_count)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    print_table(report)
    print(f"\nwritten: {args.out}")
    return 0


def print_scaling(title: str, result: Dict) -> None:
    print(f"\nphases, {title} (median of {result['configs']['1_worker']['runs']}); speed-up against 1 worker; "
          f"at most on 2 cores: {result['ideal_speedup_on_2_cores']}")
    print(phases.phase_table(result["configs"], baseline="1_worker"))


def print_short_clips(sc: Dict) -> None:
    print(f"\nshort clips: {sc['files']} files against one file, {sc['audio_seconds']:.0f} audio seconds each; "
          f"identical shards: each tree across its runs {sc['identical_shards_across_runs']}; "
          f"across the trees {sc['identical_shards_across_trees']}")
    print(f"{'tree':<8} {'input':<6} {'wall s':>8} {'CPU s':>8} {'CPU ms/audio s':>15} {'peak RSS MB':>12}")
    for label, row in sc["trees"].items():
        for kind in ("short", "long"):
            r = row[kind]
            print(f"{label:<8} {kind:<6} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['cpu_ms_per_audio_s']:>15.2f} "
                  f"{r['max_rss_mb']:>12.0f}")
        print(f"{label:<8} short / long CPU: {row['short_over_long_cpu']:.2f}x; "
              f"{row['extra_cpu_ms_per_file']:.1f} ms more CPU per file")
    configs = {kind: phases.median_phases([r]) for kind, r in sc["phases_this_tree"].items()}
    print("phases of this tree, short against long (one run each):")
    print(phases.phase_table(configs, baseline="long"))


def print_table(report: Dict) -> None:
    print(f"{report['machine']['cores']} cores, {report['date']}, {report['minutes_per_format']} min per format, "
          f"median of {report['runs']}" + (f"; before = {report['baseline_tree']}" if "baseline_tree" in report else ""))
    if "startup_before" in report:
        sb = report["startup_before"]
        print(f"builder start-up before (one 3 s file): {sb['cpu_s']:.1f} CPU s, {sb['wall_s']:.1f} s wall")
    st = report.get("startup")
    if st:
        print(f"builder start-up (one 3 s file): {st['cpu_s']:.1f} CPU s, {st['wall_s']:.1f} s wall, "
              f"peak RSS {st['max_rss_mb']:.0f} MB")
    print(f"{'format':<18} {'measurement':<20} {'wall s':>8} {'CPU s':>8} {'x realtime/core':>16} {'peak RSS MB':>12}")
    for name, row in report["formats"].items():
        for key in ("builder_1_worker", "builder_1_worker_before", "builder_steady_state",
                    "builder_steady_state_before", "builder_2_workers", "ffmpeg_only", "seed_workflow"):
            if key in row:
                r = row[key]
                wall = f"{r['wall_s']:>8.1f}" if "wall_s" in r else f"{'':>8}"
                rss = f"{r['max_rss_mb']:>12.0f}" if "max_rss_mb" in r else ""
                print(f"{name:<18} {key:<20} {wall} {r['cpu_s']:>8.1f} {r['x_realtime_per_core']:>16.1f} {rss}")
        stages = row["stages_cpu_s"]
        print(f"{name:<18} CPU s per stage ({stages['segments']} segments): " + ", ".join(
            f"{k} {v:.2f}" for k, v in stages.items() if k != "segments"))
        print(f"{name:<18} ratios: {row['ratios']}")
        if "scaling" in row:
            print_scaling(f"{name}, {report['minutes_per_format']} min", row["scaling"])
    if "scaling_long" in report:
        long = report["scaling_long"]
        print_scaling(f"{long['format']}, {long['minutes']:g} min", long)
    if "short_clips" in report:
        print_short_clips(report["short_clips"])
    for k, v in report.get("storage", {}).items():
        print(f"storage {k:<28} {v['bytes_per_audio_second']:>10.0f} bytes per audio second")
    for k, v in report.get("memory", {}).items():
        if k == "ratios":
            print(f"memory  ratios: {v}")
        else:
            print(f"memory  {k:<28} peak RSS {v['max_rss_mb']:.0f} MB, wall {v['wall_s']:.0f} s, CPU {v['cpu_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
