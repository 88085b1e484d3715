"""Where one build's wall time and CPU go, phase by phase, for any worker count and running mode.

  from benchmarks.phases import measure
  measure(["--manifest", M, "--output", OUT, "--direct_num_workers", "2", ...])

Two records on one clock (epoch seconds): `benchmarks.stage_clock`, inside the build, logs when the
runner starts each fused stage; a sampler here reads the CPU seconds (user + system) of every process
of the build's tree (the runner, Beam's SDK worker processes, ffmpeg) from /proc every 0.1 s. A phase
runs from its marker to the next one; its CPU is what the whole tree used meanwhile, so `cores` (CPU /
wall) says how much of the machine the phase kept busy. Linux only (/proc).
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

# (phase, the event that starts it): a stage whose name holds the label, or one of stage_clock's marks.
# Stages between markers (manifest, planning, the small JSON collections) count in the phase before.
PHASES: Tuple[Tuple[str, Tuple[str, str]], ...] = (
    ("start-up", ("start", "")),  # interpreter, imports, flag checks, pipeline construction, worker processes
    ("decode + silence", ("stage", "AnalyzeAudio-DecodeAndStrip")),
    ("cut + features + spill", ("stage", "CutSegments-Cut")),  # includes the TensorFlow import
    ("merge shards", ("stage", "WriteShards-Merge")),
    ("worker shutdown", ("shutdown_start", "")),
    ("finalize", ("finalize_start", "")),  # speakers.tsv, dataset.json, report, temp folder removal
    ("exit", ("finalize_end", "")),
)


class TreeSampler:
    """CPU seconds used so far by a process and all its descendants, sampled in a thread.

    A process that exits keeps the CPU of its last sample (up to one interval is missed; `measure`
    reports the difference to the kernel's own total as `unsampled_cpu_s`)."""

    def __init__(self, root_pid: int, interval: float = 0.1):
        self.root, self.interval = root_pid, interval
        self.samples: List[Tuple[float, float]] = []  # (epoch, CPU seconds of the tree)
        self._last: Dict[int, float] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        children: Dict[int, List[int]] = {}
        cpu: Dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # exited meanwhile
            fields = stat[stat.rindex(b")") + 2:].split()
            pid = int(entry)
            children.setdefault(int(fields[1]), []).append(pid)
            cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick
        stack = [self.root]
        while stack:
            pid = stack.pop()
            if pid in cpu:
                self._last[pid] = cpu[pid]
            stack.extend(children.get(pid, ()))
        self.samples.append((time.time(), sum(self._last.values())))

    def cpu_at(self, t: float) -> float:
        """The tree's CPU seconds at time t, interpolated between samples."""
        samples = self.samples
        if not samples or t <= samples[0][0]:
            return 0.0
        for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
            if t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return samples[-1][1]


def read_stage_log(path: str) -> List[Tuple[float, str, str]]:
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                events.append((float(parts[0]), parts[1], parts[2]))
    return events


def phase_starts(events: Sequence[Tuple[float, str, str]], start: float) -> List[Tuple[str, float]]:
    """(phase, start time) of each phase whose marker occurred, in PHASES order."""
    out = []
    for name, (kind, label) in PHASES:
        if kind == "start":
            out.append((name, start))
            continue
        t = next((t for t, k, n in events if k == kind and label in n), None)
        if t is not None:
            out.append((name, max(t, out[-1][1])))
    return out


def split_phases(starts: Sequence[Tuple[str, float]], end: float, sampler: TreeSampler) -> List[Dict]:
    rows = []
    bounds = [t for _, t in starts] + [end]
    for (name, t0), t1 in zip(starts, bounds[1:]):
        wall = max(t1 - t0, 0.0)
        cpu = max(sampler.cpu_at(t1) - sampler.cpu_at(t0), 0.0)
        rows.append({"phase": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "cores": round(cpu / wall, 3) if wall > 0 else 0.0})
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(build_args: Sequence[str], env=None, interval: float = 0.1) -> Dict:
    """Run `python -m benchmarks.stage_clock LOG -- build_args`; wall and CPU per phase and in all."""
    with tempfile.TemporaryDirectory(prefix="phases-") as tmp:
        log = os.path.join(tmp, "stages.tsv")
        cmd = [sys.executable, "-m", "benchmarks.stage_clock", log, "--", *build_args]
        before = _children_cpu()
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        sampler = TreeSampler(proc.pid, interval).start()
        _, err = proc.communicate()
        end = time.time()
        sampler.sample()
        sampler.stop()
        total_cpu = _children_cpu() - before
        if proc.returncode != 0:
            tail = " ".join(err.decode(errors="replace").strip().splitlines()[-5:])[-500:]
            raise RuntimeError(f"build failed ({proc.returncode}): {tail}")
        events = read_stage_log(log)
    rows = split_phases(phase_starts(events, start), end, sampler)
    sampled = sum(r["cpu_s"] for r in rows)
    # a process the build does not wait for (the preloading process of --local-workers, which exits after the
    # build) is missing from the kernel's total of waited-for children: the sampled tree has it
    total_cpu = max(total_cpu, sampled)
    return {"wall_s": round(end - start, 3), "cpu_s": round(total_cpu, 3),
            "unsampled_cpu_s": round(total_cpu - sampled, 3), "stages": sum(1 for _, k, _ in events if k == "stage"),
            "phases": rows}


def median_phases(results: Sequence[Dict]) -> Dict:
    """Per-phase medians over runs (a phase missing from a run counts as 0 s there)."""
    names = [p for p, _ in PHASES if any(r["phase"] == p for res in results for r in res["phases"])]

    def value(res, phase, key):
        return next((r[key] for r in res["phases"] if r["phase"] == phase), 0.0)

    rows = []
    for name in names:
        wall = statistics.median(value(res, name, "wall_s") for res in results)
        cpu = statistics.median(value(res, name, "cpu_s") for res in results)
        rows.append({"phase": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "cores": round(cpu / wall, 3) if wall > 0 else 0.0})
    return {"wall_s": round(statistics.median(r["wall_s"] for r in results), 3),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in results), 3),
            "unsampled_cpu_s": round(statistics.median(r["unsampled_cpu_s"] for r in results), 3),
            "runs": len(results), "phases": rows}


def phase_table(configs: Dict[str, Dict], baseline: Optional[str] = None) -> str:
    """Text table: one row per phase, wall / CPU / cores per configuration, speed-up against the baseline."""
    names = list(configs)
    baseline = baseline or names[0]
    phases = [p for p, _ in PHASES if any(r["phase"] == p for c in configs.values() for r in c["phases"])]
    head = f"{'phase':<24}" + "".join(f" | {n[:30]:>30}" for n in names)
    lines = [head, f"{'':<24}" + "".join(f" | {'wall s  CPU s  cores  speed-up':>30}" for _ in names)]

    def row(config, phase):
        return next((r for r in config["phases"] if r["phase"] == phase), None)

    for phase in phases + ["(whole build)"]:
        cells = []
        base = row(configs[baseline], phase) if phase != "(whole build)" else configs[baseline]
        for n in names:
            r = row(configs[n], phase) if phase != "(whole build)" else configs[n]
            if r is None:
                cells.append(f"{'-':>30}")
                continue
            cores = r.get("cores", r["cpu_s"] / r["wall_s"] if r["wall_s"] else 0.0)
            speed = f"{base['wall_s'] / r['wall_s']:.2f}x" if base and base["wall_s"] >= 0.05 and r["wall_s"] >= 0.05 else "-"
            cells.append(f"{r['wall_s']:>7.1f} {r['cpu_s']:>6.1f} {cores:>6.2f} {speed:>9}")
        lines.append(f"{phase:<24}" + "".join(f" | {c:>30}" for c in cells))
    return "\n".join(lines)
