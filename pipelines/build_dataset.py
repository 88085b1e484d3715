"""Build a speaker-recognition dataset: audio + manifest -> sharded TFRecords with leakage-free splits.

Locally (DirectRunner, the default):
  python -m pipelines.build_dataset --manifest corpus/manifest.jsonl --output data/ds
  python -m pipelines.build_dataset --audio-dir corpus/ --output data/ds \\
      --direct_num_workers 2 --direct_running_mode multi_processing
On Google Cloud Dataflow (the same job):
  python -m pipelines.build_dataset --manifest gs://b/manifest.jsonl --output gs://b/ds \\
      --runner DataflowRunner --project P --region R --temp_location gs://b/tmp --setup_file ./setup.py

Stages: ReadManifest -> AnalyzeAudio (decode, 16 kHz mono, strip silence) -> PlanDataset (caps,
minimums, split) -> CutSegments -> ComputeFeatures -> WriteShards; then finalize() writes
speakers.tsv, dataset.json, errors/ and report/.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

from pipelines import logs
from pipelines import runtime
from pipelines import schema
from pipelines.paths import join
from pipelines.audio import PARTIAL_POLICIES, SilenceParams

log = logging.getLogger("build_dataset")


class UsageError(Exception):
    """A bad flag or input found before any work starts; printed as one line."""


def add_args(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("input (one of)")
    src.add_argument("--manifest", help="JSONL manifest (DESIGN.md 2.1); local path or gs://")
    src.add_argument("--audio-dir", help="folder laid out <speaker>/<files> (nested folders allowed)")
    parser.add_argument("--output", required=True, help="dataset folder to write (local or gs://)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset built with a different configuration in --output")
    seg = parser.add_argument_group("segments")
    seg.add_argument("--segment-seconds", type=float, default=1.0, help="segment length (default: %(default)s)")
    seg.add_argument("--hop-seconds", type=float, default=None, help="step between segment starts (default: the segment length)")
    seg.add_argument("--partial", choices=PARTIAL_POLICIES, default="drop",
                     help="last piece shorter than a segment: drop it or zero-pad it (default: %(default)s)")
    sil = parser.add_argument_group("silence stripping")
    sil.add_argument("--min-pause-seconds", type=float, default=0.5, help="pauses at least this long are removed (default: %(default)s)")
    sil.add_argument("--silence-threshold-db", type=float, default=35.0,
                     help="a frame is silent when this many dB below the recording's speech level (default: %(default)s)")
    sil.add_argument("--silence-padding-seconds", type=float, default=0.1,
                     help="silence kept next to speech on each side of a removed pause (default: %(default)s)")
    sil.add_argument("--no-strip-silence", action="store_true", help="keep pauses")
    cap = parser.add_argument_group("per-speaker caps")
    cap.add_argument("--max-seconds-per-speaker", type=float, default=None,
                     help="speech seconds kept per speaker, recordings taken in id order (default: no cap)")
    cap.add_argument("--min-seconds-per-speaker", type=float, default=0.0,
                     help="speakers with less speech are dropped (default: %(default)s)")
    spl = parser.add_argument_group("splits")
    spl.add_argument("--split-by", choices=schema.SPLIT_BY, default="recording",
                     help="unit kept within one split (default: %(default)s; 'segment' only to reproduce the Keras example)")
    spl.add_argument("--split-fractions", default="0.8,0.1,0.1", help="train,validation,test (default: %(default)s)")
    spl.add_argument("--split-seed", default="0", help="salt of the stable split hash (default: %(default)s)")
    feat = parser.add_argument_group("features and output")
    feat.add_argument("--features", default=",".join(schema.DEFAULT_FEATURES),
                      help=f"comma-separated, from {','.join(schema.FEATURES)} (default: %(default)s)")
    feat.add_argument("--num-mel-bins", type=int, default=64, help="(default: %(default)s)")
    feat.add_argument("--num-shards", type=int, default=None, help="shards per split (default: from --shard-size-mb)")
    feat.add_argument("--shard-size-mb", type=float, default=128.0, help="target uncompressed shard size (default: %(default)s)")
    feat.add_argument("--gzip", action="store_true", help="gzip-compress the TFRecord shards")
    feat.add_argument("--batch-size", type=int, default=64, help="segments per TensorFlow feature call (default: %(default)s)")


def parse_args(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.build_dataset", description=__doc__.split("\n\n")[0],
        epilog="Beam pipeline options (--runner, --direct_num_workers, --direct_running_mode, --project, "
               "--region, --temp_location, --setup_file, --sdk_container_image, ...) pass straight through.")
    add_args(parser)
    args, beam_args = parser.parse_known_args(argv)
    try:
        validate(args, beam_args)
    except UsageError as exc:
        parser.error(str(exc))
    return args, beam_args


def _fractions(text: str):
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--split-fractions must be three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6 or parts[0] <= 0:
        raise UsageError(f"--split-fractions must be three non-negative numbers summing to 1 with train > 0, got {text!r}")
    return parts


def _unknown_beam_args(beam_args: List[str]) -> List[str]:
    from apache_beam.options.pipeline_options import PipelineOptions

    opts = PipelineOptions(beam_args)
    known = opts.get_all_options(drop_default=False, retain_unknown_options=False)
    every = opts.get_all_options(drop_default=False, retain_unknown_options=True)
    return sorted(set(every) - set(known))


def _exists(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def validate(args, beam_args: List[str]) -> None:
    """Every check that can fail before work starts."""
    if bool(args.manifest) == bool(args.audio_dir):
        raise UsageError("give exactly one of --manifest or --audio-dir")
    unknown = _unknown_beam_args(beam_args)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(beam_args)}")
    if args.segment_seconds <= 0:
        raise UsageError("--segment-seconds must be > 0")
    if args.segment_seconds * schema.SAMPLE_RATE < 1:
        raise UsageError("--segment-seconds is shorter than one sample")
    if args.hop_seconds is not None and not 0.01 <= args.hop_seconds:
        raise UsageError("--hop-seconds must be at least 0.01")
    args.fractions = _fractions(args.split_fractions)
    features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    bad = [f for f in features if f not in schema.FEATURES]
    if not features or bad:
        raise UsageError(f"--features: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(schema.FEATURES)}")
    args.feature_list = tuple(f for f in schema.FEATURES if f in features)
    if args.min_seconds_per_speaker < 0:
        raise UsageError("--min-seconds-per-speaker must be >= 0")
    if args.max_seconds_per_speaker is not None:
        if args.max_seconds_per_speaker < args.segment_seconds:
            raise UsageError("--max-seconds-per-speaker must be at least one segment")
        if args.max_seconds_per_speaker < args.min_seconds_per_speaker:
            raise UsageError("--max-seconds-per-speaker is below --min-seconds-per-speaker")
    if args.num_shards is not None and args.num_shards < 1:
        raise UsageError("--num-shards must be >= 1")
    if args.shard_size_mb <= 0 or args.batch_size < 1 or args.num_mel_bins < 1:
        raise UsageError("--shard-size-mb, --batch-size and --num-mel-bins must be positive")
    try:
        silence_params(args).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.manifest and not _exists(args.manifest):
        raise UsageError(f"--manifest {args.manifest}: no such file")
    if args.audio_dir and not _exists(args.audio_dir):
        raise UsageError(f"--audio-dir {args.audio_dir}: no such folder")
    check_output(args)


def silence_params(args) -> SilenceParams:
    return SilenceParams(min_pause_s=args.min_pause_seconds, threshold_db=args.silence_threshold_db,
                         padding_s=args.silence_padding_seconds, enabled=not args.no_strip_silence)


def feature_config(args) -> schema.FeatureConfig:
    return schema.FeatureConfig(segment_samples=int(round(args.segment_seconds * schema.SAMPLE_RATE)),
                                num_mel_bins=args.num_mel_bins)


def dataset_config(args) -> Dict:
    """Everything that determines the dataset's contents (compared when --output already holds one)."""
    seg = int(round(args.segment_seconds * schema.SAMPLE_RATE))
    hop = int(round((args.hop_seconds or args.segment_seconds) * schema.SAMPLE_RATE))
    return {
        "input": {"manifest": args.manifest, "audio_dir": args.audio_dir},
        "segment_seconds": seg / schema.SAMPLE_RATE, "hop_seconds": hop / schema.SAMPLE_RATE,
        "partial": args.partial,
        "silence": {"enabled": not args.no_strip_silence, "min_pause_seconds": args.min_pause_seconds,
                    "threshold_db": args.silence_threshold_db, "padding_seconds": args.silence_padding_seconds},
        "max_seconds_per_speaker": args.max_seconds_per_speaker,
        "min_seconds_per_speaker": args.min_seconds_per_speaker,
        "split_by": args.split_by, "split_fractions": list(args.fractions), "split_seed": args.split_seed,
        "features": list(args.feature_list), "num_mel_bins": args.num_mel_bins,
        "num_shards": args.num_shards, "shard_size_mb": args.shard_size_mb, "gzip": args.gzip,
    }


def check_output(args) -> None:
    """Refuse an output folder that holds a different dataset, or anything that is not a dataset."""
    from apache_beam.io.filesystems import FileSystems

    out = args.output
    meta_path = join(out, schema.DATASET_JSON)
    if FileSystems.exists(meta_path):
        with FileSystems.open(meta_path) as f:
            try:
                previous = json.loads(f.read()).get("config")
            except ValueError:
                previous = None
        if previous != dataset_config(args) and not args.overwrite:
            diff = sorted(k for k in set(previous or {}) | set(dataset_config(args))
                          if (previous or {}).get(k) != dataset_config(args).get(k))
            raise UsageError(f"--output {out} holds a different dataset (differs in: {', '.join(diff) or 'dataset.json'}); "
                             "choose another --output or pass --overwrite")
        return
    if "://" not in out and os.path.isdir(out):
        others = [n for n in os.listdir(out) if n != schema.TEMP_DIR]
        if others and not args.overwrite:
            raise UsageError(f"--output {out} is not empty and holds no {schema.DATASET_JSON}; "
                             "choose an empty or new folder, or pass --overwrite")
    elif "://" not in out and os.path.exists(out):
        raise UsageError(f"--output {out} is a file, not a folder")


def prepare_output(args) -> str:
    """Clear what an earlier build left (same config or --overwrite) and return the manifest to read."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines import manifest as manifest_lib

    out = args.output
    if "://" not in out:
        os.makedirs(out, exist_ok=True)
    old = [m.path for m in FileSystems.match([join(out, "*")])[0].metadata_list]
    stale = [p for p in old if schema.SHARD_RE.match(os.path.basename(p)) or
             os.path.basename(p) in (schema.DATASET_JSON, schema.SPEAKERS_TSV, "manifest.jsonl")]
    for sub in (schema.ERRORS_DIR, schema.REPORT_DIR, schema.TEMP_DIR):
        stale += [m.path for m in FileSystems.match([join(out, sub, "**")])[0].metadata_list]
    if args.overwrite and "://" not in out:
        import shutil

        for name in os.listdir(out):
            p = os.path.join(out, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    elif stale:
        FileSystems.delete(stale)
    if args.manifest:
        return args.manifest
    root = args.audio_dir
    if "://" in root:
        listing = [m.path[len(root.rstrip('/')) + 1:] for m in
                   FileSystems.match([root.rstrip("/") + "/**"])[0].metadata_list]
        records, skipped = manifest_lib.records_from_audio_dir(root, lambda _r: listing)
    else:
        records, skipped = manifest_lib.records_from_audio_dir(root)
    for r in records:
        r["path"] = join(root if "://" in root else os.path.abspath(root), r["path"])
    derived = join(out, "manifest.jsonl")
    with FileSystems.create(derived) as f:
        f.write(manifest_lib.to_jsonl(records).encode("utf-8"))
    pre = [{"id": "", "path": join(root, rel), "stage": "manifest", "reason": "not_audio", "message": why,
            "line": None} for rel, why in skipped]
    if pre:
        with FileSystems.create(join(out, schema.TEMP_DIR, "prerejected.json")) as f:
            f.write(json.dumps(pre).encode("utf-8"))
    return derived


def build_pipeline(p, args, manifest_path: str):
    """Wire the stages; returns nothing (every output is written by the pipeline)."""
    import apache_beam as beam

    from pipelines import planning, transforms

    out, temp = args.output, join(args.output, schema.TEMP_DIR)
    fcfg = feature_config(args)
    seg = fcfg.segment_samples
    hop = int(round((args.hop_seconds or args.segment_seconds) * schema.SAMPLE_RATE))
    plan_cfg = planning.PlanConfig(
        segment_samples=seg, hop_samples=hop, partial=args.partial, split_by=args.split_by,
        fractions=args.fractions, split_seed=args.split_seed,
        max_seconds_per_speaker=args.max_seconds_per_speaker, min_seconds_per_speaker=args.min_seconds_per_speaker)

    manifest = p | "ReadManifest" >> transforms.ReadManifest(manifest_path)
    analyzed = manifest["records"] | "AnalyzeAudio" >> transforms.AnalyzeAudio(
        temp, silence_params(args), seg, hop, args.partial)
    plan = analyzed["analyzed"] | "PlanDataset" >> transforms.PlanDataset(plan_cfg)
    counts = plan["expected"] | "ShardCounts" >> beam.Map(
        transforms.shard_counts, fcfg.bytes_per_example(args.feature_list), args.num_shards,
        int(args.shard_size_mb * 2 ** 20))
    segments = plan["planned"] | "CutSegments" >> transforms.CutSegments(seg, hop, args.partial, args.fractions, args.split_seed)
    examples = segments | "ComputeFeatures" >> transforms.ComputeFeatures(fcfg, args.feature_list, args.batch_size)
    written = (examples, counts) | "WriteShards" >> transforms.WriteShards(out, temp, args.gzip)

    _ = written | "WriteShardStats" >> transforms.WriteJsonList(join(temp, "shards.json"),
                                                                 lambda s: (s["split"], s["shard"]))
    _ = counts | "WriteShardCounts" >> beam.Map(transforms._write_json_list, join(temp, "shard_counts.json"))
    _ = (plan["planned"] | "Summarize" >> beam.Map(transforms.planned_summary)
         | "WritePlanned" >> transforms.WriteJsonList(join(temp, "planned.json"), lambda r: r["id"]))
    rejected = ((manifest[transforms.REJECTED], analyzed[transforms.REJECTED], plan[transforms.REJECTED])
                | "AllRejected" >> beam.Flatten())
    _ = rejected | "WriteRejected" >> transforms.WriteJsonList(
        join(temp, "rejected.json"), lambda r: (r["stage"], r["id"], r["line"] or 0))


def run(argv: Optional[Sequence[str]] = None) -> Dict:
    """Parse, validate, run the Beam job, finalize; returns the dataset.json contents."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines import report

    args, beam_args = parse_args(argv)
    manifest_path = prepare_output(args)
    options = PipelineOptions(beam_args)
    log.info("building %s from %s", args.output, manifest_path)
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, args, manifest_path)
    return report.finalize(args.output, manifest_path, dataset_config(args), feature_config(args),
                           args.feature_list, gzip=args.gzip)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logs.setup()
    runtime.fast_exit()
    meta = run(argv)
    from pipelines import report

    print(report.summary_text(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
