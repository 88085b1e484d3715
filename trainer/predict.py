"""Name the speaker of audio files with an exported model.

  python -m trainer.predict --export runs/r1/export clip.mp3 talk.wav …      # a table
  python -m trainer.predict --export runs/r1/export --json *.flac            # one JSON object per file
  python -m trainer.predict --export runs/r1/export --segments long.mp3      # per-segment results too
  python -m trainer.predict --export runs/os/export --gallery team.json *.wav  # enrolled speakers, or unknown

Each file is decoded with the pipeline's own audio code (any format and rate -> 16 kHz mono), its pauses
stripped with the dataset's settings and cut into the model's segment length (a file shorter than one
segment becomes one zero-padded segment); memory does not grow with a file's length. Without a gallery the
segment probabilities over the training speakers are averaged. With `--gallery` (speakers enrolled with
python -m trainer.enroll) the file's embedding is scored against each enrolled speaker, and the best is
named when its score passes the export's identification threshold (the score 0.5 % of the test split's
non-target trials reach, stricter than verification's EER point; `--threshold` overrides), else `unknown`.
A file with less than `--min-speech-seconds` of speech is reported as too short, never named. An
unreadable or missing file gets a one-line error on stderr; the others are still reported (exit code 1).
An export folder that is not one, or audio paths none of which exists, are refused before TensorFlow
starts (exit code 2).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Dict, Optional, Sequence

import numpy as np

from pipelines import arguments, process_lifecycle
from pipelines.decode import DECODERS, AudioError
from pipelines.paths import is_remote
from trainer.inference import MIN_SPEECH_SECONDS, file_embedding, iter_file_batches

UNKNOWN = "unknown"
EXPORT_JSON = "speaker_model.json"  # trainer.export.MODEL_JSON, named here without importing TensorFlow


def predict_file(model, info, path: str, keep_segments: bool = False,
                 min_speech_s: Optional[float] = None) -> Dict:
    """The training speaker of one file: segment probabilities averaged (a running sum); `info` is the
    export's ModelInfo."""
    total, count, per_segment = None, 0, []
    hop_s = info.build_config.segmentation.hop_seconds
    speakers = info.speakers
    for waves in iter_file_batches(path, info, min_speech_s):
        probs = model.signatures["serving_default"](waveform=waves)["probabilities"].numpy().astype(np.float64)
        total = probs.sum(axis=0) if total is None else total + probs.sum(axis=0)
        if keep_segments:
            per_segment += [{"start_s": round((count + i) * hop_s, 3), "speaker": speakers[int(p.argmax())],
                             "confidence": round(float(p.max()), 4)} for i, p in enumerate(probs)]
        count += len(probs)
    mean = total / count
    best = int(mean.argmax())
    result = {"path": path, "speaker": speakers[best], "speaker_name": info.name_of(speakers[best]),
              "confidence": round(float(mean[best]), 4), "segments": count}
    if keep_segments:
        result["per_segment"] = per_segment
    return result


def identify_file(model, info, gallery, path: str, threshold: float, cohort=None,
                  min_speech_s: Optional[float] = None) -> Dict:
    """The enrolled speaker of one file, or `unknown` when no enrolled speaker scores `threshold` or more."""
    names, scores = gallery.scores(file_embedding(model, info, path, min_speech_s), cohort)
    best = int(np.argmax(scores[0]))
    score = float(scores[0, best])
    ranked = sorted(zip(names, scores[0].tolist()), key=lambda kv: -kv[1])[:3]
    return {"path": path, "speaker": names[best] if score >= threshold else UNKNOWN, "score": round(score, 4),
            "best_enrolled": names[best], "threshold": round(threshold, 4),
            "top": [{"speaker": n, "score": round(s, 4)} for n, s in ranked]}


def command_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The parser of a command that runs an export: the docstring's first paragraph as its description, the
    rest (usage examples) as its epilog (pipelines.arguments), --export, --min-speech-seconds, --decoder and
    --verbose already added."""
    p = arguments.command_parser(prog, doc)
    add_model_args(p)
    return p


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--export (old spelling --model), --min-speech-seconds, --decoder and --verbose, as every command that
    runs an export takes them."""
    arguments.flag(p, "--export", "--model", dest="model", required=True, metavar="EXPORT",
                   help="export folder written by trainer.task (JOB/export)")
    p.add_argument("--min-speech-seconds", type=float, default=None,
                   help="a file with less speech after silence stripping is reported as too short instead of "
                        f"used (default: {MIN_SPEECH_SECONDS:g} s or half the model's segment, whichever is less)")
    p.add_argument("--decoder", choices=DECODERS, default=None,
                   help="decode with this instead of the dataset's decoder (its dataset.json config: pyav for "
                        "datasets built since it became the default, ffmpeg before)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs, and TensorFlow's own start-up messages")


def check_args(p: argparse.ArgumentParser, args) -> None:
    """The checks that need no TensorFlow, made before it is imported (a wrong path costs no start-up):
    --min-speech-seconds, the export folder (a training job's folder gets "did you mean JOB/export?"),
    audio files none of which exists (when some do, each missing one is reported with the others' results,
    as `missing_file`). One-line argparse errors (exit status 2)."""
    if args.min_speech_seconds is not None and not args.min_speech_seconds >= 0:
        p.error("--min-speech-seconds must be >= 0")
    model = args.model
    if not is_remote(model):
        problem = arguments.local_path_problem("--export", model)
        if problem:
            p.error(problem)
        if not os.path.isfile(os.path.join(model, EXPORT_JSON)):
            nested = os.path.join(model, "export")
            if os.path.isfile(os.path.join(nested, EXPORT_JSON)):
                p.error(f"--export {model} is a training job's folder, not an export: did you mean {nested}?")
            p.error(f"--export {model} is not an export of trainer.task (no {EXPORT_JSON})")
    audio = getattr(args, "audio", None) or ()
    missing = [m for m in (arguments.local_path_problem("audio file", path, kind="file") for path in audio) if m]
    if audio and len(missing) == len(audio):
        p.error(missing[0] + (f" (nor do the other {len(missing) - 1})" if len(missing) > 1 else ""))


def load_model(p: argparse.ArgumentParser, args, open_set: bool = False):
    """(SavedModel, ModelInfo) of --export; a one-line argparse error when it is not an export (or, with
    `open_set`, not an embedder). The checks without TensorFlow (check_args) come first."""
    from pipelines import logs

    check_args(p, args)
    logs.setup(args.verbose)
    process_lifecycle.quiet_tensorflow(args.verbose)
    process_lifecycle.import_tensorflow(lean=False)
    from trainer import export

    try:
        model, info = export.load(args.model)
    except (OSError, ValueError, KeyError) as exc:
        p.error(f"--export {args.model} is not an export of trainer.task ({str(exc).splitlines()[0]})")
    if open_set and "embed" not in model.signatures and "serving_default" not in model.signatures:
        p.error(f"--export {args.model} has no embedding signature")
    if args.decoder:
        info = dataclasses.replace(info, build_config=dataclasses.replace(info.build_config, decoder=args.decoder))
    return model, info


def decision_threshold(p: argparse.ArgumentParser, info, override: Optional[float],
                       identification: bool = False) -> float:
    """`override`, else the export's threshold: for naming one of several enrolled speakers (`identification`)
    the stricter one calibrated for it when the export has it, else the verification (EER) threshold."""
    if override is not None:
        return override
    if identification and info.identification_threshold is not None:
        return float(info.identification_threshold)
    if info.threshold is None:
        p.error("this export stores no verification threshold (a closed-set model): give --threshold")
    return float(info.threshold)


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("python -m trainer.predict", __doc__)
    p.add_argument("audio", nargs="+", help="audio files (any format ffmpeg reads)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--segments", action="store_true", help="also report each segment (without --gallery)")
    p.add_argument("--gallery", help="name speakers enrolled in this gallery (python -m trainer.enroll), or unknown")
    p.add_argument("--threshold", type=float, default=None,
                   help="with --gallery: the score an enrolled speaker needs (default: the export's calibrated one)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    missing = args.gallery and arguments.local_path_problem("--gallery", args.gallery, kind="file")
    if missing:
        p.error(missing)
    model, info = load_model(p, args, open_set=bool(args.gallery))
    gallery, cohort, threshold = None, None, None
    if args.gallery:
        from trainer.export import load_cohort
        from trainer.gallery import Gallery, GalleryError

        try:
            gallery = Gallery.for_model(args.gallery, info.model_id, info.embedding_dim)
        except GalleryError as exc:
            p.error(str(exc))
        threshold = decision_threshold(p, info, args.threshold, identification=True)
        cohort = load_cohort(args.model) if info.score_normalization == "as-norm" else None
    failed = 0
    rows = []
    for path in args.audio:
        try:
            if gallery is not None:
                result = identify_file(model, info, gallery, path, threshold, cohort, args.min_speech_seconds)
            else:
                result = predict_file(model, info, path, args.segments, args.min_speech_seconds)
        except AudioError as exc:
            print(f"trainer.predict: {path}: {exc.reason}: {exc.message}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            rows.append(result)
    if not args.json and rows:
        width = max(len(r["path"]) for r in rows)
        if gallery is not None:
            print(f"{'file':<{width}}  {'speaker':<24} {'score':>8}  (threshold {threshold:.3f})")
            for r in rows:
                print(f"{r['path']:<{width}}  {r['speaker'][:24]:<24} {r['score']:>8.3f}")
        else:
            print(f"{'file':<{width}}  {'speaker':<24} {'name':<24} {'confidence':>10} {'segments':>8}")
            for r in rows:
                print(f"{r['path']:<{width}}  {r['speaker']:<24} {r['speaker_name'][:24]:<24} "
                      f"{r['confidence']:>10.3f} {r['segments']:>8}")
                for s in r.get("per_segment", []):
                    print(f"{'':<{width}}    {s['start_s']:>8.2f}s  {s['speaker']:<24} {s['confidence']:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
