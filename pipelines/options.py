"""Command-line options of the builder, as Beam's examples declare them: `BuildOptions(PipelineOptions)`.

`parse_build_args(argv)` reads the command line once into the `BuildConfig` (what the dataset holds),
the job settings (output folder, --overwrite, the feature batch size) and Beam's own `PipelineOptions`.
Every flag, ours and Beam's, is in `--help`; an unknown flag or a bad value fails before any work.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, List, Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import arguments, schema
from pipelines.audit import AUDIT_POLICIES, AuditConfig, SpeakerChecks
from pipelines.quality import QualityGates
from pipelines.config import BuildConfig, ConfigError, parse_features, parse_fractions
from pipelines.decode import DECODERS
from pipelines.segments import PARTIAL_POLICIES
from pipelines.silence import SilenceParams

_DEFAULT = BuildConfig()
_SILENCE = SilenceParams()
_CHECKS = SpeakerChecks()
_GATES = QualityGates()


class BuildOptions(PipelineOptions):
    """The builder's flags (kebab-case); Beam's options (`--runner`, `--direct_num_workers`, …) sit beside them."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        src = parser.add_argument_group("input (one of)")
        src.add_argument("--manifest", help="JSONL manifest, one recording per line (ARCHITECTURE.md, Contracts); "
                                            "local path or gs://")
        src.add_argument("--audio-dir", help="folder laid out <speaker>/<files> (nested folders allowed)")
        out = parser.add_argument_group("output")
        out.add_argument("--output", help="dataset folder to write (local or gs://); required")
        out.add_argument("--no-progress", action="store_true",
                         help="no progress bar or progress lines on stderr (recordings done, hours decoded, ETA)")
        out.add_argument("--overwrite", action="store_true",
                         help="replace a dataset built with a different configuration in --output")
        seg = parser.add_argument_group("segments")
        seg.add_argument("--segment-seconds", type=float, default=_DEFAULT.segment_seconds,
                         help="segment length (default: %(default)s)")
        seg.add_argument("--hop-seconds", type=float, default=None,
                         help="step between segment starts (default: the segment length)")
        seg.add_argument("--partial", choices=PARTIAL_POLICIES, default=_DEFAULT.partial,
                         help="last piece shorter than a segment: drop it or zero-pad it (default: %(default)s)")
        sil = parser.add_argument_group("silence stripping")
        sil.add_argument("--min-pause-seconds", type=float, default=_SILENCE.min_pause_s,
                         help="pauses at least this long are removed (default: %(default)s)")
        sil.add_argument("--silence-threshold-db", type=float, default=_SILENCE.threshold_db,
                         help="a frame is silent when this many dB below the recording's speech level "
                              "(default: %(default)s)")
        sil.add_argument("--silence-padding-seconds", type=float, default=_SILENCE.padding_s,
                         help="silence kept next to speech on each side of a removed pause (default: %(default)s)")
        sil.add_argument("--no-strip-silence", action="store_true", help="keep pauses")
        cap = parser.add_argument_group("per-speaker caps")
        cap.add_argument("--max-seconds-per-speaker", type=float, default=None,
                         help="speech seconds kept per speaker, recordings taken in id order (default: no cap)")
        cap.add_argument("--min-seconds-per-speaker", type=float, default=_DEFAULT.min_seconds_per_speaker,
                         help="speakers with less speech are dropped (default: %(default)s)")
        spl = parser.add_argument_group("splits")
        spl.add_argument("--split-by", choices=schema.SPLIT_BY, default=_DEFAULT.split_by,
                         help="unit kept within one split (default: %(default)s; 'segment' only to reproduce the "
                              "Keras example)")
        spl.add_argument("--split-fractions", default=",".join(f"{f:g}" for f in _DEFAULT.split_fractions),
                         help="train,validation,test (default: %(default)s)")
        spl.add_argument("--split-seed", default=_DEFAULT.split_seed,
                         help="salt of the stable split hash (default: %(default)s)")
        feat = parser.add_argument_group("features and shards")
        feat.add_argument("--features", default=",".join(_DEFAULT.features),
                          help=f"comma-separated, from {','.join(schema.FEATURES)} (default: %(default)s)")
        feat.add_argument("--num-mel-bins", type=int, default=_DEFAULT.num_mel_bins, help="(default: %(default)s)")
        feat.add_argument("--num-shards", type=int, default=None,
                          help="shards per split (default: from --shard-size-mb)")
        feat.add_argument("--shard-size-mb", type=float, default=_DEFAULT.shard_size_mb,
                          help="target uncompressed shard size (default: %(default)s)")
        feat.add_argument("--gzip", action="store_true", help="gzip-compress the TFRecord shards")
        dec = parser.add_argument_group("decoding")
        dec.add_argument("--decoder", choices=DECODERS, default=_DEFAULT.decoder,
                          help="pyav: in-process FFmpeg libraries of the av wheel; ffmpeg: one ffmpeg process per "
                               "file (README, How it works: Decode) (default: %(default)s)")
        aud = parser.add_argument_group("acoustic audit (README, The acoustic audit)")
        aud.add_argument("--audit-policy", choices=AUDIT_POLICIES, default=_DEFAULT.audit.policy,
                         help="reject: recordings the audit rejects stay out of the shards (listed in "
                              "errors/audit.jsonl); flag: kept and marked; both write audit.jsonl; off: no audit "
                              "(default: %(default)s)")
        aud.add_argument("--audit-model", default=None,
                         help="an export of trainer.task (open-set or closed-set) whose embeddings check one voice "
                              "per recording and the right voice per speaker; without it only the quality gates "
                              "and duplicate checks run")
        aud.add_argument("--audit-window-seconds", type=float, default=_CHECKS.window_s,
                         help="length of the embedded windows (default: %(default)s)")
        aud.add_argument("--audit-coverage", type=float, default=_CHECKS.coverage,
                         help="at most this fraction of a recording's speech is embedded: the cost bound "
                              "(default: %(default)s)")
        aud.add_argument("--audit-min-windows", type=int, default=_CHECKS.min_windows,
                         help="at least this many windows per recording when its speech allows (default: %(default)s)")
        aud.add_argument("--audit-max-windows", type=int, default=_CHECKS.max_windows,
                         help="at most this many windows per recording (default: %(default)s)")
        aud.add_argument("--audit-cross-similarity", type=float, default=_CHECKS.cross_similarity,
                         help="windows of two voices are on average less alike than this cosine (default: %(default)s)")
        aud.add_argument("--audit-min-voice-fraction", type=float, default=_CHECKS.min_voice_fraction,
                         help="a second voice must hold this fraction of a recording's windows to make it "
                              "multi_speaker (default: %(default)s)")
        aud.add_argument("--audit-min-speaker-similarity", type=float, default=_CHECKS.min_speaker_similarity,
                         help="cosine similarity to the speaker's reference below which a recording is "
                              "speaker_mismatch (default: %(default)s)")
        aud.add_argument("--audit-min-recordings", type=int, default=_CHECKS.min_recordings,
                         help="speakers with fewer recordings are not checked for speaker_mismatch "
                              "(default: %(default)s)")
        aud.add_argument("--audit-min-snr-db", type=float, default=_GATES.min_snr_db,
                         help="low_snr (reject) below this estimated SNR, for recordings of 1 s or more; 0: off "
                              "(default: %(default)s)")
        aud.add_argument("--audit-min-speech-ratio", type=float, default=_GATES.min_speech_ratio,
                         help="low_speech_ratio (flag) when less of the recording is speech; 0: off (default: %(default)s)")
        aud.add_argument("--audit-min-bandwidth-hz", type=float, default=_GATES.min_bandwidth_hz,
                         help="narrowband (flag) below this effective bandwidth: telephone or 8 kHz audio; 0: off "
                              "(default: %(default)s)")
        aud.add_argument("--audit-max-clipped-fraction", type=float, default=_GATES.max_clipped_fraction,
                         help="clipped (reject) above this fraction of samples in clipped runs; 0: off "
                              "(default: %(default)s)")
        run = parser.add_argument_group("local run")
        run.add_argument("--local-workers", type=int, default=0,
                         help="run on this many local worker processes forked from one that has already imported "
                              "Beam and TensorFlow (the fastest local mode; 2 on 2 cores); 0: Beam's DirectRunner "
                              "as its own options say, one in-process worker by default (default: %(default)s)")
        feat.add_argument("--batch-size", type=int, default=64,
                          help="segments per TensorFlow feature call; does not change the output "
                               "(default: %(default)s)")

    def to_config(self) -> BuildConfig:
        """The validated BuildConfig these options describe; ConfigError names the bad flag."""
        return BuildConfig(
            manifest=self.manifest, audio_dir=self.audio_dir,
            segment_seconds=self.segment_seconds, hop_seconds=self.hop_seconds, partial=self.partial,
            silence=SilenceParams(min_pause_s=self.min_pause_seconds, threshold_db=self.silence_threshold_db,
                                  padding_s=self.silence_padding_seconds, enabled=not self.no_strip_silence),
            max_seconds_per_speaker=self.max_seconds_per_speaker,
            min_seconds_per_speaker=self.min_seconds_per_speaker,
            split_by=self.split_by, split_fractions=parse_fractions(self.split_fractions),
            split_seed=self.split_seed, features=parse_features(self.features), num_mel_bins=self.num_mel_bins,
            num_shards=self.num_shards, shard_size_mb=self.shard_size_mb, gzip=self.gzip, decoder=self.decoder,
            audit=AuditConfig(
                model=self.audit_model, policy=self.audit_policy,
                checks=SpeakerChecks(window_s=self.audit_window_seconds, coverage=self.audit_coverage,
                                     min_windows=self.audit_min_windows, max_windows=self.audit_max_windows,
                                     cross_similarity=self.audit_cross_similarity,
                                     min_voice_fraction=self.audit_min_voice_fraction,
                                     min_speaker_similarity=self.audit_min_speaker_similarity,
                                     min_recordings=self.audit_min_recordings),
                gates=QualityGates(min_snr_db=self.audit_min_snr_db, min_speech_ratio=self.audit_min_speech_ratio,
                                   min_bandwidth_hz=self.audit_min_bandwidth_hz,
                                   max_clipped_fraction=self.audit_max_clipped_fraction)),
        ).validate()


class LogOptions(PipelineOptions):
    """--verbose of every Beam job (builder, preprocess), declared once: Beam gathers every options class into
    one parser, where a flag declared by two classes conflicts."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--verbose", action="store_true",
                            help="debug logs, and TensorFlow's own start-up messages (hidden otherwise)")


@dataclasses.dataclass(frozen=True)
class BuildJob:
    """One run of the builder: what to build (config), where, and how the runner runs it."""

    config: BuildConfig
    output: str
    overwrite: bool
    batch_size: int
    pipeline_options: PipelineOptions
    progress: bool = True
    verbose: bool = False
    local_workers: int = 0  # > 0: pipelines.local_workers


def beam_option_classes() -> List[type]:
    """Every PipelineOptions subclass Beam has registered (its runners, filesystems, workers), ours aside."""
    seen, out = set(), []
    for cls in PipelineOptions.__subclasses__():
        name = cls.__name__
        if cls in (BuildOptions, LogOptions) or name.startswith("Test") or name in seen or not cls.__module__.startswith("apache_beam"):
            continue
        seen.add(name)
        out.append(cls)
    return out


def make_parser(prog: str, doc: str, own: type) -> argparse.ArgumentParser:
    """A parser for `--help` and for refusing unknown flags (abbreviations too): the options class `own` first,
    then one group per Beam options class. `doc` (the job module's docstring): its first paragraph is the
    description, the rest (the usage examples) the epilog."""
    parser = arguments.command_parser(prog, doc)
    LogOptions._add_argparse_args(parser)
    parser.epilog = ((parser.epilog or "") + "\n\n"
                     "Beam's options (the groups headed 'Beam ...') go to the runner unchanged: DirectRunner by\n"
                     "default; --runner DataflowRunner with --project, --region, --temp_location and --setup_file\n"
                     "for Google Cloud Dataflow. Architecture and contracts: ARCHITECTURE.md.").lstrip()
    own._add_argparse_args(parser)
    for cls in beam_option_classes():
        cls._add_argparse_args(parser.add_argument_group(f"Beam {cls.__name__}"))
    return parser


def parse_build_args(argv: Optional[Sequence[str]], prog: str = "python -m pipelines.build_dataset",
                     doc: str = "", check: Optional[Callable[[BuildJob], Optional[str]]] = None) -> BuildJob:
    """argv -> BuildJob. Bad or unknown flags, and whatever `check` finds wrong with the job (a one-line
    reason, or None), exit with an argparse error before any work."""
    argv = list(argv) if argv is not None else None
    parser = make_parser(prog, doc, BuildOptions)
    parser.parse_args(argv)  # --help, unknown flags, types and choices
    options = PipelineOptions(argv)
    build = options.view_as(BuildOptions)
    if not build.output:
        parser.error("the following arguments are required: --output")
    try:
        config = build.to_config()
    except ConfigError as exc:
        parser.error(str(exc))
    if build.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    problem = local_workers_problem(build.local_workers, options)
    if problem:
        parser.error(problem)
    job = BuildJob(config=config, output=build.output, overwrite=bool(build.overwrite), batch_size=build.batch_size,
                   pipeline_options=options, progress=not build.no_progress,
                   verbose=bool(options.view_as(LogOptions).verbose), local_workers=build.local_workers)
    problem = check(job) if check else None
    if problem:
        parser.error(problem)
    return job


def local_workers_problem(workers: int, options: PipelineOptions) -> Optional[str]:
    """Why --local-workers cannot be used with these options (None when it can, or is not given)."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    if workers < 0:
        return "--local-workers must be >= 0"
    if workers == 0:
        return None
    runner = options.view_as(StandardOptions).runner
    if runner not in (None, "DirectRunner", "direct", "SwitchingDirectRunner"):
        return f"--local-workers runs the job on this machine; it cannot be combined with --runner {runner}"
    direct = options.view_as(DirectOptions)
    if direct.direct_num_workers != 1 or direct.direct_running_mode != "in_memory":
        return ("--local-workers sets the local workers itself; leave out --direct_num_workers and "
                "--direct_running_mode")
    return None
