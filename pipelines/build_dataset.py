"""Build a speaker-recognition dataset: audio + manifest -> sharded TFRecords with leakage-free splits.

Locally (DirectRunner, the default):
  python -m pipelines.build_dataset --manifest corpus/manifest.jsonl --output data/ds
  python -m pipelines.build_dataset --audio-dir corpus/ --output data/ds \\
      --direct_num_workers 2 --direct_running_mode multi_threading
On Google Cloud Dataflow (the same job):
  python -m pipelines.build_dataset --manifest gs://b/manifest.jsonl --output gs://b/ds \\
      --runner DataflowRunner --project P --region R --temp_location gs://b/tmp --setup_file ./setup.py

Stages (pipelines.transforms): ReadManifest -> AnalyzeAudio (decode, 16 kHz mono, strip silence) ->
PlanDataset (caps, minimums, split) -> CutSegments -> ComputeFeatures -> WriteShards; then
pipelines.finalize writes speakers.tsv, dataset.json, errors/ and report/. ARCHITECTURE.md has the map.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from pipelines import finalize, logs, process_lifecycle, report, schema
from pipelines.dataset_meta import DatasetMeta
from pipelines.options import BuildJob, parse_build_args
from pipelines.paths import join

log = logging.getLogger(__name__)


def check_inputs_and_output(job: BuildJob) -> Optional[str]:
    """Why the job cannot start (missing input, an output folder it must not write into), or None."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines.output_dir import OutputError, check_output

    config = job.config
    if config.manifest and not FileSystems.exists(config.manifest):
        return f"--manifest {config.manifest}: no such file"
    if config.audio_dir and not FileSystems.exists(config.audio_dir):
        return f"--audio-dir {config.audio_dir}: no such folder"
    try:
        check_output(job.output, config, job.overwrite)
    except OutputError as exc:
        return str(exc)
    return None


def parse_args(argv: Optional[Sequence[str]]) -> BuildJob:
    """The command line -> BuildJob; a bad flag, input or output folder exits with a one-line error."""
    return parse_build_args(argv, description=__doc__.split("\n\n")[0], check=check_inputs_and_output)


def build_pipeline(p, job: BuildJob, manifest_path: str) -> None:
    """Wire the stages; every output is written by the pipeline itself."""
    import apache_beam as beam

    from pipelines import shards, transforms
    from pipelines.transforms import REJECTED

    config, out = job.config, job.output
    temp = join(out, schema.TEMP_DIR)

    manifest = p | "ReadManifest" >> transforms.ReadManifest(manifest_path)
    analyzed = manifest["records"] | "AnalyzeAudio" >> transforms.AnalyzeAudio(config, temp)
    plan = analyzed["analyzed"] | "PlanDataset" >> transforms.PlanDataset(config)
    counts = plan["expected"] | "ShardCounts" >> beam.Map(
        shards.shard_counts, config.feature_config.bytes_per_example(config.features), config.num_shards,
        config.shard_bytes)
    segments = plan["planned"] | "CutSegments" >> transforms.CutSegments(config)
    examples = segments | "ComputeFeatures" >> transforms.ComputeFeatures(config, job.batch_size)
    written = (examples, counts) | "WriteShards" >> transforms.WriteShards(config, out, temp)

    _ = written | "WriteShardStats" >> transforms.WriteJsonList(
        join(temp, finalize.SHARDS_JSON), lambda s: (s["split"], s["shard"]))
    _ = counts | "WriteShardCounts" >> beam.Map(transforms.write_json, join(temp, finalize.SHARD_COUNTS_JSON))
    _ = (plan["planned"] | "Summarize" >> beam.Map(lambda planned: planned.summary())
         | "WritePlanned" >> transforms.WriteJsonList(join(temp, finalize.PLANNED_JSON), lambda r: r["id"]))
    rejected = ((manifest[REJECTED], analyzed[REJECTED], plan[REJECTED]) | "AllRejected" >> beam.Flatten())
    _ = rejected | "WriteRejected" >> transforms.WriteJsonList(
        join(temp, finalize.REJECTED_JSON), lambda r: r.sort_key(), lambda r: r.to_json())


def run(argv: Optional[Sequence[str]] = None) -> DatasetMeta:
    """Parse, validate, run the Beam job, finalize; returns the dataset's DatasetMeta."""
    import apache_beam as beam

    from pipelines.output_dir import prepare_output

    job = parse_args(argv)
    manifest_path = prepare_output(job.output, job.config, job.overwrite)
    log.info("building %s from %s", job.output, manifest_path)
    with beam.Pipeline(options=job.pipeline_options) as p:
        build_pipeline(p, job, manifest_path)
    return finalize.finalize(job.output, manifest_path, job.config)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logs.setup()
    process_lifecycle.fast_exit()
    meta = run(argv)
    print(report.summary_text(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
