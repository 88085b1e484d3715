"""Build a speaker-recognition dataset: audio + manifest -> sharded TFRecords with leakage-free splits.

Locally (DirectRunner, the default):
  python -m pipelines.build_dataset --manifest corpus/manifest.jsonl --output data/ds
  python -m pipelines.build_dataset --audio-dir corpus/ --output data/ds --local-workers 2
On Google Cloud Dataflow (the same job):
  python -m pipelines.build_dataset --manifest gs://b/manifest.jsonl --output gs://b/ds \\
      --runner DataflowRunner --project P --region R --temp_location gs://b/tmp --setup_file ./setup.py

Stages (pipelines.transforms): ReadManifest -> AnalyzeAudio (decode, 16 kHz mono, strip silence) ->
PlanDataset (caps, minimums, split) -> CutSegments -> ComputeFeatures -> WriteShards; then
pipelines.finalize writes speakers.tsv, dataset.json, errors/ and report/. ARCHITECTURE.md has the map.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from pipelines import logs, process_lifecycle, schema
from pipelines.paths import is_remote, join

if TYPE_CHECKING:  # Beam is imported by the functions that need it: --local-workers starts before it (main)
    from pipelines.dataset_meta import DatasetMeta
    from pipelines.options import BuildJob

log = logging.getLogger(__name__)


def check_manifest(path: str) -> Optional[str]:
    """Why --manifest cannot be read as a manifest (missing, a folder, not a regular file, no record), or None."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines.manifest import is_blank

    if not is_remote(path):
        if not os.path.exists(path):
            return f"--manifest {path}: no such file"
        if os.path.isdir(path):
            return f"--manifest {path} is a folder; give the manifest file (or use --audio-dir for a folder of audio)"
        if not stat.S_ISREG(os.stat(path).st_mode):
            return f"--manifest {path} is not a regular file"
    elif not FileSystems.exists(path):
        return f"--manifest {path}: no such file"
    try:
        with FileSystems.open(path) as f:
            if all(is_blank(line) for line in f):
                return f"--manifest {path} holds no record (every line is empty)"
    except OSError as exc:
        return f"--manifest {path}: {exc.strerror or exc}"
    return None


def check_inputs_and_output(job: BuildJob) -> Optional[str]:
    """Why the job cannot start (an input it cannot read, an output folder it must not write into), or None."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines.output_dir import OutputError, check_output

    config = job.config
    if config.manifest:
        problem = check_manifest(config.manifest)
        if problem:
            return problem
    if config.audio_dir:
        if not FileSystems.exists(config.audio_dir):
            return f"--audio-dir {config.audio_dir}: no such folder"
        if not is_remote(config.audio_dir) and not os.path.isdir(config.audio_dir):
            return f"--audio-dir {config.audio_dir} is a file; give the folder laid out <speaker>/<files>"
    if config.audit.model and config.audit.enabled:
        from pipelines.model_info import read_model_info

        try:
            read_model_info(config.audit.model)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return (f"--audit-model {config.audit.model} is not an export of trainer.task "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    try:
        check_output(job.output, config, job.overwrite)
    except OutputError as exc:
        return str(exc)
    return None


def build_parser():
    """The builder's argparse parser (its --help): our flags, then Beam's."""
    from pipelines.options import BuildOptions, make_parser

    return make_parser("python -m pipelines.build_dataset", __doc__, BuildOptions)


def parse_args(argv: Optional[Sequence[str]]) -> BuildJob:
    """The command line -> BuildJob; a bad flag, input or output folder exits with a one-line error."""
    from pipelines.options import parse_build_args

    return parse_build_args(argv, doc=__doc__, check=check_inputs_and_output)


def build_pipeline(p, job: BuildJob, manifest_path: str) -> None:
    """Wire the stages; every output is written by the pipeline itself."""
    import apache_beam as beam

    from pipelines import finalize, shards, transforms
    from pipelines.build_progress import feed_dir
    from pipelines.transforms import REJECTED

    config, out = job.config, job.output
    temp = join(out, schema.TEMP_DIR)

    manifest = p | "ReadManifest" >> transforms.ReadManifest(manifest_path, feed_dir(temp))
    analyzed = manifest["records"] | "AnalyzeAudio" >> transforms.AnalyzeAudio(config, temp)
    stage_rejects = [manifest[REJECTED], analyzed[REJECTED]]
    if config.audit.enabled:
        audited = analyzed["analyzed"] | "AuditRecordings" >> transforms.AuditRecordings(config)
        _ = audited["audit"] | "WriteAudit" >> transforms.WriteJsonList(join(temp, finalize.AUDIT_JSON),
                                                                         lambda d: d["id"])
        stage_rejects.append(audited[REJECTED])
        analyzed = audited
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
    rejected = ((*stage_rejects, plan[REJECTED]) | "AllRejected" >> beam.Flatten())
    _ = rejected | "WriteRejected" >> transforms.WriteJsonList(
        join(temp, finalize.REJECTED_JSON), lambda r: r.sort_key(), lambda r: r.to_json())


class BuildFailed(RuntimeError):
    """The job could not finish (a full disk, an unwritable folder, a bug): one line for the user."""


def run(argv: Optional[Sequence[str]] = None) -> DatasetMeta:
    """Parse, validate, run the Beam job, finalize; returns the dataset's DatasetMeta."""
    return run_job(parse_args(argv))


def share_cores_between_workers(options) -> None:
    """DirectRunner's multi_processing workers each run TensorFlow for the features, and TensorFlow sizes its
    thread pools for the whole machine: two workers on 2 cores then run 4+ feature threads. Give each worker
    its share (cores // workers) through the environment the worker processes inherit, unless the user set it.
    Measured on 6 hours of MP3 with 2 workers on 2 cores: the feature phase 1.25x -> 1.72x of one worker
    (benchmarks/RESULTS.md). One worker, or multi_threading, keeps TensorFlow's own sizing."""
    from apache_beam.options.pipeline_options import DirectOptions

    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return
    workers = direct.direct_num_workers or process_lifecycle.usable_cores()  # 0: one per core, as Beam does
    if workers > 1:
        os.environ.update(process_lifecycle.tensorflow_thread_share(workers))


def local_runner(job: BuildJob, stack: contextlib.ExitStack):
    """With --local-workers: (Beam's FnApiRunner on a pool of warm forked workers (pipelines.local_workers), which
    `stack` stops, the pool); otherwise (None: the runner the options name, None)."""
    if not job.local_workers:
        return None, None
    from apache_beam.options.pipeline_options import DirectOptions

    from pipelines import local_workers

    pool = stack.enter_context(local_workers.worker_pool(job.local_workers))
    job.pipeline_options.view_as(DirectOptions).direct_num_workers = job.local_workers
    return local_workers.runner(pool.address), pool


def early_local_workers(argv: Optional[Sequence[str]]) -> None:
    """When the command line asks for --local-workers N, start their preloading process now, before this process
    imports Beam to read the rest of it, so that the two imports overlap (pipelines.local_workers). A bad value
    is left to the full parse, which refuses it."""
    import argparse

    scan = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    scan.add_argument("--local-workers", default="0")
    scan.add_argument("--verbose", action="store_true")
    known, _ = scan.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        workers = int(known.local_workers)
    except ValueError:
        return
    if workers > 0:
        from pipelines import local_workers

        process_lifecycle.quiet_tensorflow(known.verbose)
        local_workers.start_preloading(workers)


def run_job(job: BuildJob) -> DatasetMeta:
    """Run a parsed job. A build that fails leaves no half-written dataset and no temp folder behind
    (BuildFailed; OutputError when another build holds the output folder). Progress (recordings done of the
    manifest's, hours decoded, rate, ETA) goes to stderr unless `job.progress` is off (pipelines.build_progress)."""
    import apache_beam as beam

    from pipelines import finalize
    from pipelines.build_progress import BuildProgress, feed_dir
    from pipelines.output_dir import build_lock, prepare_output, remove_owned

    pool = None
    with build_lock(job.output):
        try:
            manifest_path = prepare_output(job.output, job.config)
            log.info("building %s from %s", job.output, manifest_path)
            share_cores_between_workers(job.pipeline_options)
            with contextlib.ExitStack() as stack:
                runner, pool = local_runner(job, stack)
                p = beam.Pipeline(runner=runner, options=job.pipeline_options)
                build_pipeline(p, job, manifest_path)
                total = finalize.count_manifest_lines(manifest_path) if job.progress else 0
                BuildProgress(total, feed_dir(join(job.output, schema.TEMP_DIR)), enabled=job.progress).run(p)
            return finalize.finalize(job.output, manifest_path, job.config)
        except Exception as exc:
            try:
                remove_owned(job.output, job.config)
            except Exception:  # a full or read-only disk may refuse even this: the failure itself is what counts
                log.debug("could not clean %s", job.output, exc_info=True)
            # a worker that died says more than the runner's broken stream to it
            raise BuildFailed("; ".join(pool.failures) if pool and pool.failures else one_line(exc)) from exc


def one_line(exc: BaseException) -> str:
    """The root cause of an exception as one line (Beam wraps a worker's exception and appends its stack)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, OSError) and exc.strerror:
        first = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {first}"[:500]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from pipelines.arguments import prog_name

    process_lifecycle.fast_exit()
    prog = prog_name("python -m pipelines.build_dataset")
    early_local_workers(argv)
    from pipelines.output_dir import OutputError  # Beam's filesystems: after the workers' preloading started

    job = parse_args(argv)
    logs.setup(job.verbose)
    process_lifecycle.quiet_tensorflow(job.verbose)
    try:
        meta = run_job(job)
    except OutputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except BuildFailed as exc:
        log.debug("build failed", exc_info=True)
        print(f"{prog}: error: the build failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the output folder itself refused (read-only, no space for the lock file)
        print(f"{prog}: error: {job.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    from pipelines import report

    print(report.summary_text(meta))
    if meta.counts.recordings_with_segments == 0:
        print(f"{prog}: error: no input became training data; the reasons are in "
              f"{join(job.output, schema.ERRORS_DIR)}/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
