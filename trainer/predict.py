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
import logging
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from pipelines import audio as audio_lib
from pipelines.schema import SAMPLE_RATE

BATCH = 64


def file_segments(path: str, info: Dict) -> List[np.ndarray]:
    """Float32 segments of one file, cut as the dataset was (silence stripped, same length)."""
    sil = info.get("silence") or {}
    params = audio_lib.SilenceParams(
        min_pause_s=sil.get("min_pause_seconds", 0.5), threshold_db=sil.get("threshold_db", 35.0),
        padding_s=sil.get("padding_seconds", 0.1), enabled=sil.get("enabled", True))
    seg = int(info["segment_samples"])
    hop = int(round((info.get("hop_seconds") or info["segment_seconds"]) * SAMPLE_RATE))
    with tempfile.TemporaryFile() as speech:
        analysis = audio_lib.analyze_and_strip(path, speech.write, params)
        speech.seek(0)
        chunks = iter(lambda: speech.read(audio_lib.CHUNK_SAMPLES * 2), b"")
        pcm = (audio_lib.read_pcm(c) for c in chunks)
        partial = "pad" if analysis.speech_samples < seg else "drop"
        return [s.astype(np.float32) / 32768.0 for _, s, _ in audio_lib.iter_segments(pcm, seg, hop, partial)]


def predict_file(model, info: Dict, path: str, keep_segments: bool = False) -> Dict:
    segments = file_segments(path, info)
    probs = []
    for i in range(0, len(segments), BATCH):
        out = model.signatures["serving_default"](waveform=np.stack(segments[i:i + BATCH]))
        probs.append(out["probabilities"].numpy())
    probs = np.concatenate(probs)
    mean = probs.mean(axis=0)
    best = int(mean.argmax())
    speakers = info["speakers"]
    result = {"path": path, "speaker": speakers[best], "speaker_name": info["speaker_names"].get(speakers[best], ""),
              "confidence": round(float(mean[best]), 4), "segments": len(segments)}
    if keep_segments:
        seg_s = info["segment_samples"] / SAMPLE_RATE
        hop_s = info.get("hop_seconds") or seg_s
        result["per_segment"] = [{"start_s": round(i * hop_s, 3), "speaker": speakers[int(p.argmax())],
                                  "confidence": round(float(p.max()), 4)} for i, p in enumerate(probs)]
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="export folder written by trainer.task")
    p.add_argument("audio", nargs="+", help="audio files (any format ffmpeg reads)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--segments", action="store_true", help="also report each segment")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from trainer import export

    if not os.path.isdir(args.model) and "://" not in args.model:
        p.error(f"--model {args.model}: no such folder")
    try:
        model, info = export.load(args.model)
    except (OSError, ValueError) as exc:
        p.error(f"--model {args.model} is not an export of trainer.task ({str(exc).splitlines()[0]})")
    failed = 0
    rows = []
    for path in args.audio:
        try:
            result = predict_file(model, info, path, args.segments)
        except audio_lib.AudioError as exc:
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
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
