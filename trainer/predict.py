"""Name the speaker of audio files with an exported model.

  python -m trainer.predict --model runs/r1/export clip.mp3 talk.wav …      # a table
  python -m trainer.predict --model runs/r1/export --json *.flac            # one JSON object per file
  python -m trainer.predict --model runs/r1/export --segments long.mp3      # per-segment results too

Each file is decoded with the pipeline's own audio code (any format and rate -> 16 kHz mono), its
pauses stripped with the dataset's settings, cut into the model's segment length (a file shorter
than one segment becomes one zero-padded segment), and the segment probabilities are averaged.
An unreadable file gets a one-line error on stderr; the others are still reported (exit code 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from pipelines import logs
from pipelines.decode import CHUNK_SAMPLES, DECODERS, AudioError, read_pcm
from pipelines.silence import analyze_and_strip

BATCH = 64
MIN_SPEECH_SECONDS = 0.5  # the default floor is this or half a segment, whichever is less


def default_min_speech_seconds(info) -> float:
    return min(MIN_SPEECH_SECONDS, info.build_config.segmentation.segment_seconds / 2)


def iter_file_batches(path: str, info, min_speech_s: Optional[float] = None,
                      decoder: Optional[str] = None) -> Iterator[np.ndarray]:
    """Float32 batches [<= BATCH, segment samples] of one file, cut as the dataset was (`info.build_config`:
    decoder, silence, length, hop), streamed from a temporary file: memory does not grow with the file's length.
    AudioError('too_short') when less than `min_speech_s` of speech is left after silence stripping.
    `decoder` overrides the dataset's (pipelines.decode.DECODERS)."""
    config = info.build_config
    segmentation = config.segmentation
    floor = default_min_speech_seconds(info) if min_speech_s is None else min_speech_s
    with tempfile.TemporaryFile() as speech:
        analysis = analyze_and_strip(path, speech.write, config.silence, decoder=decoder or config.decoder)
        if analysis.speech_s < floor:
            raise AudioError("too_short", f"{analysis.speech_s:.2f} s of speech after silence stripping (decoded "
                                          f"{analysis.decoded_s:.2f} s), less than the {floor:g} s needed to name "
                                          "a speaker (--min-speech-seconds)")
        speech.seek(0)
        chunks = iter(lambda: speech.read(CHUNK_SAMPLES * 2), b"")
        pcm = (read_pcm(c) for c in chunks)
        partial = "pad" if analysis.speech_samples < segmentation.segment_samples else "drop"
        batch: List[np.ndarray] = []
        for _, segment, _ in segmentation.cut(pcm, partial=partial):
            batch.append(segment.astype(np.float32) / 32768.0)
            if len(batch) == BATCH:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)


def predict_file(model, info, path: str, keep_segments: bool = False,
                 min_speech_s: Optional[float] = None, decoder: Optional[str] = None) -> Dict:
    """The speaker of one file: segment probabilities averaged (a running sum: memory flat in file length);
    `info` is the export's ModelInfo."""
    total, count, per_segment = None, 0, []
    hop_s = info.build_config.segmentation.hop_seconds
    speakers = info.speakers
    for waves in iter_file_batches(path, info, min_speech_s, decoder):
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="export folder written by trainer.task")
    p.add_argument("audio", nargs="+", help="audio files (any format ffmpeg reads)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--segments", action="store_true", help="also report each segment")
    p.add_argument("--min-speech-seconds", type=float, default=None,
                   help="a file with less speech after silence stripping is reported as too short instead of "
                        f"named (default: {MIN_SPEECH_SECONDS:g} s or half the model's segment, whichever is less)")
    p.add_argument("--decoder", choices=DECODERS, default=None,
                   help="decode with this instead of the dataset's decoder (dataset.json config; pyav for datasets "
                        "built since it became the default, ffmpeg before)")
    args = p.parse_args(argv)
    if args.min_speech_seconds is not None and not args.min_speech_seconds >= 0:
        p.error("--min-speech-seconds must be >= 0")
    logs.setup()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from trainer import export

    if not os.path.isdir(args.model) and "://" not in args.model:
        p.error(f"--model {args.model}: no such folder")
    try:
        model, info = export.load(args.model)
    except (OSError, ValueError, KeyError) as exc:
        p.error(f"--model {args.model} is not an export of trainer.task ({str(exc).splitlines()[0]})")
    failed = 0
    rows = []
    for path in args.audio:
        try:
            result = predict_file(model, info, path, args.segments, args.min_speech_seconds, args.decoder)
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
        print(f"{'file':<{width}}  {'speaker':<24} {'name':<24} {'confidence':>10} {'segments':>8}")
        for r in rows:
            print(f"{r['path']:<{width}}  {r['speaker']:<24} {r['speaker_name'][:24]:<24} {r['confidence']:>10.3f} "
                  f"{r['segments']:>8}")
            for s in r.get("per_segment", []):
                print(f"{'':<{width}}    {s['start_s']:>8.2f}s  {s['speaker']:<24} {s['confidence']:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
