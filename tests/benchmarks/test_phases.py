"""benchmarks.phases: phases from stage marks, CPU of a process tree (speed itself is a benchmark)."""
from __future__ import annotations

import resource
import subprocess
import sys

from benchmarks import phases


class LinearSampler:
    """A tree that uses `rate` cores from t=100 on."""

    def __init__(self, rate):
        self.rate = rate

    def cpu_at(self, t):
        return max(t - 100.0, 0.0) * self.rate


def test_phases_start_at_their_markers_and_tile_the_run():
    events = [(101.0, "stage", "ref_AppliedPTransform_ReadManifest-Parse_5"),
              (102.0, "stage", "((ref_AppliedPTransform_AnalyzeAudio-DecodeAndStrip-ParDo-AnalyzeAudioFn-_22))"),
              (105.0, "stage", "PlanDataset-Metadata"),  # not a marker: stays in the phase before
              (106.0, "stage", "(CutSegments-Cut)+(ComputeFeatures-Featurize)"),
              (110.0, "stage", "WriteShards-Merge"), (111.0, "shutdown_start", ""),
              (111.5, "stages_done", ""), (111.5, "finalize_start", ""), (112.5, "finalize_end", "")]
    starts = phases.phase_starts(events, start=100.0)
    assert starts == [("start-up", 100.0), ("decode + silence", 102.0), ("cut + features + spill", 106.0),
                      ("merge shards", 110.0), ("worker shutdown", 111.0), ("finalize", 111.5), ("exit", 112.5)]
    rows = phases.split_phases(starts, end=113.0, sampler=LinearSampler(1.5))
    assert [r["wall_s"] for r in rows] == [2.0, 4.0, 4.0, 1.0, 0.5, 1.0, 0.5]
    assert [r["cpu_s"] for r in rows] == [3.0, 6.0, 6.0, 1.5, 0.75, 1.5, 0.75]
    assert all(r["cores"] == 1.5 for r in rows)


def test_a_missing_marker_leaves_its_time_to_the_phase_before():
    events = [(103.0, "stage", "AnalyzeAudio-DecodeAndStrip"), (104.0, "finalize_start", "")]
    starts = phases.phase_starts(events, start=100.0)
    assert starts == [("start-up", 100.0), ("decode + silence", 103.0), ("finalize", 104.0)]
    rows = phases.split_phases(starts, end=105.0, sampler=LinearSampler(1.0))
    assert [(r["phase"], r["wall_s"]) for r in rows] == [("start-up", 3.0), ("decode + silence", 1.0), ("finalize", 1.0)]


def test_the_sampler_counts_the_cpu_of_children_and_grandchildren():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    parent = ("import subprocess, sys\n" + burn +
              f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = usage.ru_utime + usage.ru_stime
    proc = subprocess.Popen([sys.executable, "-c", parent])
    sampler = phases.TreeSampler(proc.pid, interval=0.02).start()
    proc.wait()
    sampler.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    kernel = usage.ru_utime + usage.ru_stime - before
    sampled = sampler.samples[-1][1]
    assert kernel >= 1.2  # both processes burned their 0.6 s
    assert 0.8 * kernel <= sampled <= kernel + 0.05  # the grandchild is in the tree, its last moments may be missed
    ts = [t for t, _ in sampler.samples]
    assert ts == sorted(ts) and sampler.cpu_at(ts[0] - 1) == 0.0 and sampler.cpu_at(ts[-1] + 1) == sampled


def test_median_phases_and_table():
    def run(wall):
        return {"wall_s": wall, "cpu_s": wall, "unsampled_cpu_s": 0.0,
                "phases": [{"phase": "start-up", "wall_s": wall / 2, "cpu_s": wall / 2, "cores": 1.0},
                           {"phase": "decode + silence", "wall_s": wall / 2, "cpu_s": wall / 2, "cores": 1.0}]}
    med = phases.median_phases([run(2.0), run(4.0), run(10.0)])
    assert med["wall_s"] == 4.0 and med["runs"] == 3
    assert [r["wall_s"] for r in med["phases"]] == [2.0, 2.0]
    table = phases.phase_table({"one": med, "two": phases.median_phases([run(2.0)])})
    assert "2.00x" in table and "(whole build)" in table
