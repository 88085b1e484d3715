"""The benchmark commands run on a tiny input and report every figure (speed itself is not tested)."""
from __future__ import annotations

import json

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
