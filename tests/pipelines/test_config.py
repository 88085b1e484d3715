"""pipelines.config and pipelines.options: one BuildConfig from the command line, stored and read back."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from pipelines.config import BuildConfig, ConfigError, parse_features
from pipelines.silence import SilenceParams


def test_seconds_become_samples_in_one_place():
    c = BuildConfig(manifest="m", segment_seconds=0.25, hop_seconds=0.1, max_seconds_per_speaker=60.00001)
    assert (c.segment_samples, c.hop_samples, c.max_samples_per_speaker) == (4000, 1600, 960000)
    assert c.segmentation.segment_samples == c.feature_config.segment_samples == 4000
    assert BuildConfig(manifest="m", segment_seconds=5).hop_samples == 80000  # the hop defaults to the length


def test_json_round_trip_is_exact():
    c = BuildConfig(audio_dir="/a", segment_seconds=5, hop_seconds=2.5, partial="pad",
                    silence=SilenceParams(min_pause_s=0.8, threshold_db=30, padding_s=0.2, enabled=False),
                    max_seconds_per_speaker=600, min_seconds_per_speaker=10, split_by="speaker",
                    split_fractions=(0.6, 0.2, 0.2), split_seed="x", features=("audio", "log_mel"), num_mel_bins=40,
                    num_shards=3, shard_size_mb=64, gzip=True, decoder="ffmpeg")
    back = BuildConfig.from_json(c.to_json())
    assert back.to_json() == c.to_json() and not back.differences(c)
    assert back.silence == c.silence and back.features == c.features
    assert BuildConfig.from_json(c.to_json()).validate() == back
    assert c.differences(dataclasses.replace(c, gzip=False)) == ("gzip",)


def test_an_older_config_block_takes_the_defaults():
    c = BuildConfig.from_json({"segment_seconds": 1.0, "silence": {"threshold_db": 30}})
    assert c.silence.threshold_db == 30 and c.silence.min_pause_s == SilenceParams().min_pause_s
    assert c.split_fractions == (0.8, 0.1, 0.1) and c.features == BuildConfig().features
    # a dataset.json from before the in-process decoder was decoded by the ffmpeg command line
    assert c.decoder == "ffmpeg" and BuildConfig().decoder == "pyav"


def test_the_decoder_is_a_setting_of_the_dataset():
    assert BuildConfig.from_json(BuildConfig().to_json()).decoder == "pyav"
    with pytest.raises(ConfigError, match="--decoder"):
        BuildConfig(manifest="m", decoder="sox").validate()
    assert BuildConfig(manifest="m").differences(BuildConfig(manifest="m", decoder="ffmpeg")) == ("decoder",)


@pytest.mark.parametrize("changes, flag", [
    ({"manifest": None}, "--manifest or --audio-dir"),
    ({"audio_dir": "x"}, "--manifest or --audio-dir"),
    ({"segment_seconds": 0}, "--segment-seconds"),
    ({"segment_seconds": float("nan")}, "--segment-seconds"),
    ({"hop_seconds": 0.001}, "--hop-seconds"),
    ({"split_fractions": (0.5, 0.6, 0.1)}, "--split-fractions"),
    ({"split_fractions": (0.0, 0.5, 0.5)}, "--split-fractions"),
    ({"max_seconds_per_speaker": 0.5}, "--max-seconds-per-speaker"),
    ({"num_shards": 0}, "--num-shards"),
    ({"silence": SilenceParams(min_pause_s=0.2, padding_s=0.1)}, "--silence-padding-seconds"),
])
def test_validate_names_the_flag(changes, flag):
    with pytest.raises(ConfigError, match=flag):
        dataclasses.replace(BuildConfig(manifest="m"), **changes).validate()


def test_features_keep_schema_order():
    assert parse_features("log_mel, audio") == ("audio", "log_mel")
    with pytest.raises(ConfigError, match="unknown mfcc"):
        parse_features("audio,mfcc")


def test_options_make_the_config_and_keep_beams_own_options():
    from apache_beam.options.pipeline_options import DirectOptions

    from pipelines.options import parse_build_args

    job = parse_build_args(["--manifest", "m.jsonl", "--output", "out", "--segment-seconds", "0.5",
                            "--no-strip-silence", "--split-fractions", "0.7,0.2,0.1", "--direct_num_workers", "2"])
    assert job.config == BuildConfig(manifest="m.jsonl", segment_seconds=0.5, silence=SilenceParams(enabled=False),
                                     split_fractions=(0.7, 0.2, 0.1))
    assert job.output == "out" and job.batch_size == 64 and not job.overwrite
    assert job.pipeline_options.view_as(DirectOptions).direct_num_workers == 2


@pytest.mark.slow
def test_help_lists_our_flags_and_beams():
    out = subprocess.run([sys.executable, "-m", "pipelines.build_dataset", "--help"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for flag in ("--segment-seconds", "--split-by", "--runner", "--direct_num_workers", "--temp_location",
                 "--setup_file", "--sdk_container_image", "ARCHITECTURE.md"):
        assert flag in out, flag
    assert "DESIGN" + ".md" not in out  # a document users do not have
