"""The benchmark commands run on a tiny input and report every figure (speed itself is not tested)."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from benchmarks import builder, trainer_input

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow


def test_builder_benchmark_runs_on_a_tiny_input(tmp_path, capsys):
    out = tmp_path / "builder.json"
    assert builder.main(["--minutes", "0.2", "--runs", "1", "--formats", "mp3_64k_mono", "--no-storage",
                         "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["formats"]["mp3_64k_mono"]
    assert abs(row["audio_seconds"] - 12.0) < 1e-6
    for key in ("builder_1_worker", "builder_2_workers", "ffmpeg_only", "seed_workflow"):
        assert row[key]["cpu_s"] > 0 and row[key]["wall_s"] > 0 and row[key]["x_realtime_per_core"] > 0
    assert row["builder_1_worker"]["max_rss_mb"] > 100  # the builder process itself, not the wrapper
    assert set(row["ratios"]) == {"builder_vs_ffmpeg_limit", "builder_steady_vs_ffmpeg_limit",
                                  "speedup_2_workers_wall", "speedup_2_workers_multi_threading_wall",
                                  "builder_vs_seed", "builder_steady_vs_seed"}
    scaling = row["scaling"]  # phase by phase, from the runner's own stage log and the process tree's CPU
    assert set(scaling["configs"]) == set(builder.SCALING_CONFIGS)
    for name, config in scaling["configs"].items():
        names = [r["phase"] for r in config["phases"]]
        assert names[:4] == ["start-up", "decode + silence", "cut + features + spill", "merge shards"], name
        assert "finalize" in names
        walls = {r["phase"]: r["wall_s"] for r in config["phases"]}
        assert walls["decode + silence"] > 0 and walls["cut + features + spill"] > 0
        assert abs(sum(walls.values()) - config["wall_s"]) < 0.05  # the phases tile the whole run
        cpu = sum(r["cpu_s"] for r in config["phases"]) + config["unsampled_cpu_s"]
        assert abs(cpu - config["cpu_s"]) < 0.05 and config["unsampled_cpu_s"] < 0.5 * config["cpu_s"]
    assert scaling["speedup"]["2_workers_multi_processing"]["whole_build"] > 0
    assert row["ratios"]["speedup_2_workers_multi_threading_wall"] == \
        scaling["speedup"]["2_workers_multi_threading"]["whole_build"]
    assert all(1.0 <= v <= 2.0 for v in scaling["ideal_speedup_on_2_cores"].values())
    # the fixed start-up is measured on its own and taken out of the steady-state figure
    assert report["startup"]["cpu_s"] > 0
    steady = row["builder_steady_state"]
    assert abs(steady["cpu_s"] - (row["builder_1_worker"]["cpu_s"] - report["startup"]["cpu_s"])) < 1e-2
    stages = row["stages_cpu_s"]
    assert stages["segments"] >= 1  # 12 s of speech-like audio makes at least one 1 s segment
    for stage in ("decode_resample", "silence", "segment", "features", "serialize_write"):
        assert stages[stage] >= 0
    assert stages["decode_resample"] > 0 and stages["features"] > 0
    assert report["machine"]["cores"] >= 1
    printed = capsys.readouterr().out
    assert "builder_1_worker" in printed and "cut + features + spill" in printed


def test_trainer_input_benchmark_runs_on_a_tiny_dataset(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "trainer_input.json"
    assert trainer_input.main(["--dataset", str(tiny_dataset), "--batches", "3", "--runs", "1", "--batch-size", "8",
                               "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["input_examples_per_s"] > 0 and result["train_examples_per_s"] > 0
    ratio = result["input_examples_per_s"] / result["train_examples_per_s"]
    assert abs(result["input_over_train"] - ratio) <= 0.01 * ratio  # both rounded
    assert "input/train" in capsys.readouterr().out


def test_short_clips_are_cut_round_robin_without_repeating_audio():
    from benchmarks import short_clips

    sources = [("a", np.zeros(16000 * 10, np.int16)), ("b", np.zeros(16000 * 6, np.int16))]
    clips = short_clips.cut_clips(sources, 7, 3.0, 1.5)
    assert clips[:4] == [(0, 0), (1, 0), (0, 24000), (1, 24000)]
    assert len(set(clips)) == 7 and all(start + 48000 <= sources[i][1].size for i, start in clips)
    with pytest.raises(SystemExit):
        short_clips.cut_clips(sources, 100, 3.0, 1.5)


def test_builder_benchmark_short_clips_before_and_after(tmp_path, capsys):
    """The short-clip workload against a baseline tree (here this tree itself): both ratios, the same shards."""
    from tests import audio_fixtures as af

    src = tmp_path / "speech" / "spk1"
    src.mkdir(parents=True)
    for i in range(2):
        sig = af.burst_signal([2.0, 2.5], [0.3], 0.2, 0.2, sample_rate=16000, seed=i)
        af.make_audio(str(src), f"u{i}", sig.samples, 16000, "flac")
    out = tmp_path / "b.json"
    repo = str(pathlib.Path(__file__).resolve().parents[2])
    assert builder.main(["--short-clips-only", "--short-clips", str(tmp_path / "speech"), "--short-clips-count", "4",
                         "--runs", "1", "--baseline-tree", repo, "--out", str(out)]) == 0
    sc = json.loads(out.read_text())["short_clips"]
    assert sc["files"] == 4 and sc["audio_seconds"] == 12.0
    assert sc["identical_shards_across_runs"] == {t: {"short": True, "long": True} for t in ("after", "before")}
    assert sc["identical_shards_across_trees"] == {"short": True, "long": True}
    for label in ("after", "before"):
        row = sc["trees"][label]
        assert row["short"]["cpu_s"] > 0 and row["long"]["cpu_s"] > 0
        assert row["short_over_long_cpu"] == round(row["short"]["cpu_s"] / row["long"]["cpu_s"], 3)
    assert set(sc["phases_this_tree"]) == {"short", "long"}
    assert "short / long CPU" in capsys.readouterr().out
